import PeerConfig
import Testing

/// Addresses: one canonical spelling per address, and a reason for each refusal.
@Suite struct HostPortTests {
    @Test(arguments: [
        ("127.0.0.1:7101", "127.0.0.1:7101", HostPort.Kind.ipv4),
        ("[::1]:7101", "[::1]:7101", .ipv6),
        ("[0:0:0:0:0:0:0:1]:1", "[::1]:1", .ipv6),
        ("[FD00:0:0:1::0:5]:443", "[fd00:0:0:1::5]:443", .ipv6),
        ("[2001:db8:0:0:1:0:0:1]:80", "[2001:db8::1:0:0:1]:80", .ipv6),
        ("[::ffff:10.0.0.1]:80", "[::ffff:a00:1]:80", .ipv6),
        ("[::]:80", "[::]:80", .ipv6),
        ("Peer-1.Example:65535", "peer-1.example:65535", .dnsName),
        ("localhost:1", "localhost:1", .dnsName),
    ])
    func parsesToOneCanonicalSpelling(text: String, canonical: String, kind: HostPort.Kind) throws {
        let address = try #require(HostPort(text))
        #expect(address.description == canonical)
        #expect(address.kind == kind)
    }

    @Test(arguments: [
        ("127.0.0.1", "must be host:port (IPv6 in brackets: \"[::1]:7101\"), got '127.0.0.1'"),
        ("127.0.0.1:", "missing port in '127.0.0.1:'"),
        (":7101", "missing host in ':7101'"),
        ("127.0.0.1:0", "port 0 is out of range 1-65535"),
        ("127.0.0.1:70000", "port 70000 is out of range 1-65535"),
        ("127.0.0.1:99999999999999999999", "port 99999999999999999999 is out of range 1-65535"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1:-1", "port '-1' is not a number"),
        ("::1:7101", "an IPv6 address must be in brackets, e.g. \"[::1]:7101\", got '::1:7101'"),
        ("[::1]", "must be host:port (IPv6 in brackets: \"[::1]:7101\"), got '[::1]'"),
        ("[::1:7101", "must be host:port (IPv6 in brackets: \"[::1]:7101\"), got '[::1:7101'"),
        ("[1::2::3]:1", "invalid IPv6 address '1::2::3'"),
        ("[12345::]:1", "invalid IPv6 address '12345::'"),
        ("[1:2:3:4:5:6:7:8:9]:1", "invalid IPv6 address '1:2:3:4:5:6:7:8:9'"),
        ("[fe80::1%eth0]:1", "IPv6 zone ids ('%...') are not supported, got 'fe80::1%eth0'"),
        ("[10.0.0.1]:1", "invalid IPv6 address '10.0.0.1'"),
        ("127.0.0.300:1", "invalid IPv4 address '127.0.0.300'"),
        ("127.0.1:1", "invalid IPv4 address '127.0.1'"),
        ("010.0.0.1:1", "invalid IPv4 address '010.0.0.1'"),
        ("bad_host:1", "invalid host name 'bad_host': use letters, digits and '-' in dot-separated labels"),
        ("-a.example:1", "invalid host name '-a.example': use letters, digits and '-' in dot-separated labels"),
        ("a..example:1", "invalid host name 'a..example': use letters, digits and '-' in dot-separated labels"),
    ])
    func refusesWithAReason(text: String, reason: String) {
        #expect(HostPort(text) == nil)
        #expect(HostPort.reasonInvalid(text) == reason)
    }

    @Test func unspecifiedAddressesAreRecognisedInEverySpelling() throws {
        #expect(try #require(HostPort("0.0.0.0:80")).isUnspecified)
        #expect(try #require(HostPort("[0:0::0]:80")).isUnspecified)
        #expect(try !#require(HostPort("127.0.0.1:80")).isUnspecified)
        #expect(try #require(HostPort("[::1]:80")).urlHost == "[::1]")
    }
}
