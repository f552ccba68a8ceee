import Logging
import NIOCore
@testable import PeerAPI
import Testing

/// The API listener's bookkeeping: which address a connection counts against, the caps, and
/// the members' connections kept apart from clients' (issue 19).
@Suite struct ConnectionRegistryTests {
    func registry(total: Int = 4, perAddress: Int = 2, members: [String] = ["10.0.0.1", "10.0.0.2"]) -> ConnectionRegistry {
        var limits = ListenerLimits()
        limits.connectionsMax = total
        limits.connectionsPerAddressMax = perAddress
        return ConnectionRegistry(name: "test", limits: limits, memberHosts: members, memberCount: members.count, logger: Logger(label: "test"))
    }

    @Test func anIPv6ClientCountsByItsSlash64AndAMappedIPv4ByItsIPv4() throws {
        #expect(ConnectionRegistry.key(try SocketAddress(ipAddress: "192.0.2.7", port: 1)) == "192.0.2.7")
        let a = ConnectionRegistry.key(try SocketAddress(ipAddress: "2001:db8:1:2:aaaa::1", port: 1))
        let b = ConnectionRegistry.key(try SocketAddress(ipAddress: "2001:db8:1:2:ffff:1:2:3", port: 1))
        let other = ConnectionRegistry.key(try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1))
        #expect(a == "2001:db8:1:2::/64" && a == b)
        #expect(other != a)
        #expect(ConnectionRegistry.key(try SocketAddress(ipAddress: "::ffff:192.0.2.7", port: 1)) == "192.0.2.7")
        #expect(ConnectionRegistry.key(nil) == "unknown")
        #expect(ConnectionRegistry.host(of: "10.0.0.1:7001") == "10.0.0.1")
        #expect(ConnectionRegistry.host(of: "[::1]:7001") == "::1")
    }

    @Test func capsPerAddressAndInAllRefuseAndReleaseReturnsTheSlot() {
        let r = registry()
        #expect(r.admit("192.0.2.1") == nil)
        #expect(r.admit("192.0.2.1") == nil)
        #expect(r.admit("192.0.2.1") == "2 connections from 192.0.2.1 are open")
        #expect(r.admit("192.0.2.2") == nil)
        #expect(r.admit("192.0.2.3") == nil)
        #expect(r.admit("192.0.2.4") == "the listener's 4 connections are open")
        #expect(r.open == 4 && r.refusedTotal == 2)
        r.release("192.0.2.1")
        #expect(r.admit("192.0.2.4") == nil, "a released slot is free again")
        #expect(r.open == 4)
    }

    @Test func membersKeepTheirOwnSlotsWhenClientsFillTheListener() {
        let r = registry()
        for address in ["192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.2"] { #expect(r.admit(address) == nil) }
        #expect(r.admit("192.0.2.3") != nil, "the listener is full for clients")
        // Members are counted apart: 2 members × 128 + 64.
        #expect(r.memberConnectionsMax == 320)
        for _ in 0..<320 { #expect(r.admit("10.0.0.2") == nil) }
        #expect(r.admit("10.0.0.1") == "the members' 320 connections are open")
        r.release("10.0.0.2")
        #expect(r.admit("10.0.0.1") == nil)
        #expect(r.open == 4, "members' connections are not clients'")
    }
}
