@testable import ClusterModel
import Testing

/// `preview`: the apply's own answer for a command (the admin API checks writes with it before
/// proposing). It is a non-mutating method of a value type, so the state is untouched by
/// construction; what needs proving is that it answers exactly as the apply does.
struct PreviewTests {
    @Test func previewAnswersAsTheApplyWouldAndChangesNothing() {
        var replica = Replica()
        replica.expectApplied(Make.createTenant("t1", components: ["dfc"]))
        let commands: [Command.OneOf_Body] = [
            Make.createTenant("t1"),            // exists
            Make.createTenant("-bad"),          // invalid id
            Make.deleteTenant("ghost"),         // unknown
            Make.tenantState("t1", .provisioning),  // no such transition
            Make.createTenant("t2"),            // applies
            Make.deleteTenant("t1"),            // applies
        ]
        for body in commands {
            let previewed = replica.state.preview(body, leaderTimeMs: replica.timeMs + 10)
            var probe = replica
            let applied = probe.run(body)
            switch applied {
            case .applied: #expect(previewed == nil, "preview refused what the apply took: \(String(describing: previewed))")
            case .rejected(let rejection): #expect(previewed == rejection, "preview said \(String(describing: previewed)), the apply \(rejection)")
            default: Issue.record("unexpected \(applied)")
            }
        }
    }
}
