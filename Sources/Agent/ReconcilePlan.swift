/// The pure part of `reconcile`: what changes between the components the agent is aiming at
/// and the desired ones. The agent thread carries it out; tests check it with no process.
struct ReconcilePlan: Sendable, Hashable {
    /// Desired and not aimed at yet: write the tenant file, spawn. Sorted by name.
    var start: [DesiredComponent] = []
    /// Aimed at and no longer desired: stop gracefully, then forget. Sorted.
    var stop: [String] = []
    /// The process must be replaced (command, arguments, environment or port changed).
    var restart: [DesiredComponent] = []
    /// Same process: the tenant set and/or in-place fields (health path, reload signal, stop
    /// timeout) changed. The agent rewrites the tenant file and signals only if tenants changed.
    var update: [DesiredComponent] = []
    /// Refused entries with the reason; they are not started (and a running one of that name
    /// is stopped, since the desired state no longer describes a valid one).
    var rejected: [String: ComponentSpecError] = [:]

    var isEmpty: Bool { start.isEmpty && stop.isEmpty && restart.isEmpty && update.isEmpty && rejected.isEmpty }

    /// `current` is what the agent aims at now (valid entries it has not been told to drop).
    static func make(current: [String: DesiredComponent], desired: DesiredComponents) -> ReconcilePlan {
        var plan = ReconcilePlan()
        var valid: [String: DesiredComponent] = [:]
        for (key, entry) in desired.components {
            do throws(ComponentSpecError) {
                try entry.validate(key: key)
                valid[key] = entry
            } catch {
                plan.rejected[key] = error
            }
        }
        // The bound on components: keep the first `componentsMax` by name, refuse the rest.
        let names = valid.keys.sorted()
        for name in names.dropFirst(AgentLimits.componentsMax) {
            plan.rejected[name] = ComponentSpecError("more than \(AgentLimits.componentsMax) components on this instance; \(name) is refused")
            valid[name] = nil
        }
        for name in valid.keys.sorted() {
            let wanted = valid[name]!
            guard let now = current[name] else {
                plan.start.append(wanted)
                continue
            }
            if now.spec.needsRestart(toBecome: wanted.spec) {
                plan.restart.append(wanted)
            } else if now != wanted {
                plan.update.append(wanted)
            }
        }
        plan.stop = current.keys.filter { valid[$0] == nil }.sorted()
        return plan
    }
}
