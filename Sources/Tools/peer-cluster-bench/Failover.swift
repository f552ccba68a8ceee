import Foundation
import PeerAPI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What happens to the leader: killed (on loopback the kernel resets its connections at once),
/// isolated (its link down in its namespace: its packets vanish), or paused (SIGSTOP: its
/// sockets stay open and silent). Only the first sends the others a reset.
enum FailoverFault: String, CaseIterable, Sendable {
    case kill, isolate, pause

    var describe: String {
        switch self {
        case .kill: "`kill -9` of the leader"
        case .isolate: "the leader's link down (a partition: no reset)"
        case .pause: "SIGSTOP of the leader (a paused process: no reset)"
        }
    }
}

/// One fault of the leader and what followed.
struct FailoverSample: Sendable {
    var millis: Double
    var killed: Int
    var acceptedBy: Int
    var probesSent: Int
}

enum Failover {
    /// `fault` of the leader, then a write probe every `intervalMillis` (each one a new
    /// request over the admin client's pooled mutual-TLS connections, a new connection when none
    /// to that survivor is open, alternating between the survivors, each with a
    /// `probeTimeoutMillis` deadline, not waiting for earlier ones): the time from the fault to
    /// the first answer that accepts a write. Then the fault ends (the killed member restarted,
    /// the link up, SIGCONT) and the cluster must converge (every member at one commit = applied
    /// index) before the next. `isolate` needs `hosts`.
    static func run(
        _ cluster: any BenchCluster, fault: FailoverFault = .kill, hosts: NamespaceHosts? = nil, repetitions: Int, intervalMillis: Int, probeTimeoutMillis: Int = 3_000,
        giveUpSeconds: Double = 20, settleSeconds: Double = 2, log: (String) -> Void
    ) async throws -> [FailoverSample] {
        var samples: [FailoverSample] = []
        var probeCounter = 0
        for rep in 1...repetitions {
            try await cluster.waitConverged(timeoutSeconds: 60)
            try await Task.sleep(for: .milliseconds(Int(settleSeconds * 1000)))
            let leader = try await cluster.leader()
            let survivors = (0..<cluster.size).filter { $0 != leader }
            let first = FirstAccept()

            guard let victim = cluster.pids[leader] else { throw BenchError("\(cluster.system): leader \(leader + 1) is not running") }
            let killedAt: ContinuousClock.Instant
            switch fault {
            case .kill:
                killedAt = ContinuousClock.now
                Children.shared.sendKill(victim)
                cluster.markKilled(leader)
            case .pause:
                killedAt = ContinuousClock.now
                kill(victim, SIGSTOP)
            case .isolate:
                guard let hosts else { throw BenchError("isolate needs --network namespaces") }
                // From the moment the link is down (the command's own time is not counted).
                try await hosts.setLink(leader, up: false)
                killedAt = ContinuousClock.now
            }
            var sent = 0
            await withTaskGroup(of: Void.self) { group in
                let giveUp = killedAt + .milliseconds(Int(giveUpSeconds * 1000))
                var next = killedAt
                while first.value == nil && ContinuousClock.now < giveUp {
                    let target = survivors[sent % survivors.count]
                    let (path, body) = cluster.probeRequest(probeCounter)
                    probeCounter += 1
                    sent += 1
                    let e = cluster.endpoints[target]
                    group.addTask {
                        let answer = try? await cluster.client.request(host: e.host, port: e.port, method: .POST, path: path, body: body, timeoutMillis: probeTimeoutMillis)
                        guard let answer, cluster.probeAccepted(answer) else { return }
                        let at = ContinuousClock.now - killedAt
                        first.offer(at, by: target)
                    }
                    next = next + .milliseconds(intervalMillis)
                    let now = ContinuousClock.now
                    if next > now { try? await Task.sleep(until: next, clock: .continuous) } else { next = now }
                }
                await group.waitForAll()
            }
            // The fault ends before anything can throw, so no member is left stopped or cut off.
            switch fault {
            case .kill:
                guard await Children.shared.waitExit(victim, seconds: 10) else { throw BenchError("\(cluster.system) member \(leader + 1) (pid \(victim)) survived SIGKILL") }
            case .pause:
                kill(victim, SIGCONT)
            case .isolate:
                try await hosts?.setLink(leader, up: true)
            }
            guard let (elapsed, by) = first.value else {
                throw BenchError("\(cluster.system): no write accepted within \(Int(giveUpSeconds)) s after \(fault.rawValue) of member \(leader + 1) (repetition \(rep))")
            }
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            samples.append(FailoverSample(millis: ms, killed: leader, acceptedBy: by, probesSent: sent))
            log("\(cluster.system) failover \(rep)/\(repetitions): \(fault.rawValue) of member \(leader + 1), write accepted through member \(by + 1) after \(String(format: "%.0f", ms)) ms (\(sent) probes; load \(Machine.load1()))")
            if fault == .kill { try cluster.startMember(leader) }
            try await cluster.waitConverged(timeoutSeconds: 90)
        }
        return samples
    }
}

/// The earliest accepted probe: (time since the kill, member that accepted it).
final class FirstAccept: Sendable {
    private let state = Mutex<(Duration, Int)?>(nil)

    var value: (Duration, Int)? { state.withLock { $0 } }

    func offer(_ at: Duration, by member: Int) {
        state.withLock { f in
            if f == nil || at < f!.0 { f = (at, member) }
        }
    }
}
