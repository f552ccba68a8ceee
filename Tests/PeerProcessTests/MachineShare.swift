import Testing

/// The machine's two CPUs as a resource the process tests share. A test that measures latency
/// under load (the hostile-client flood) must not run beside another real cluster, whose
/// NGINX, components and wrk take the CPU its bound is about: it takes the machine alone; every
/// other process test takes a share. Waiters enter in arrival order, so a test that wants the
/// machine alone waits for the running ones to finish and holds back those that come after it.
actor MachineShare {
    static let shared = MachineShare()
    private var sharing = 0
    private var alone = false
    private var waiting: [(alone: Bool, resume: CheckedContinuation<Void, Never>)] = []

    func acquire(alone wantsAlone: Bool) async {
        if waiting.isEmpty && canEnter(alone: wantsAlone) {
            enter(alone: wantsAlone)
            return
        }
        await withCheckedContinuation { waiting.append((wantsAlone, $0)) }
    }

    func release(alone wasAlone: Bool) {
        if wasAlone { alone = false } else { sharing -= 1 }
        while let first = waiting.first, canEnter(alone: first.alone) {
            waiting.removeFirst()
            enter(alone: first.alone)
            first.resume.resume()
        }
    }

    private func canEnter(alone wantsAlone: Bool) -> Bool {
        wantsAlone ? !alone && sharing == 0 : !alone
    }

    private func enter(alone wantsAlone: Bool) {
        if wantsAlone { alone = true } else { sharing += 1 }
    }
}

/// `.sharesMachine` on a suite of process tests, `.machineAlone` on one that measures latency.
/// Applied around each test case (never around a suite, so nested suites do not take it twice).
struct MachineUse: SuiteTrait, TestTrait, TestScoping {
    let alone: Bool
    var isRecursive: Bool { true }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> MachineUse? {
        testCase == nil ? nil : self
    }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        await MachineShare.shared.acquire(alone: alone)
        do {
            try await function()
        } catch {
            await MachineShare.shared.release(alone: alone)
            throw error
        }
        await MachineShare.shared.release(alone: alone)
    }
}

extension Trait where Self == MachineUse {
    static var sharesMachine: MachineUse { MachineUse(alone: false) }
    static var machineAlone: MachineUse { MachineUse(alone: true) }
}
