import ClusterModel

/// One command the driver wants committed, with the client session that makes it apply once:
/// the client is the operation's own (`driver/<operation id>`) and the sequence follows the last
/// one applied for it, so a new leader that repeats a step its predecessor already committed gets
/// the first outcome back instead of a second effect (Raft thesis §6.3).
public struct DriverStep: Sendable, Equatable {
    public var operationId: String
    public var tenantId: String
    public var body: Command.OneOf_Body
    /// Why, for the log and the tests.
    public var why: String
    public var clientId: String
    public var sequence: UInt64
    /// The kind of the operation the step advances; nil for a step that starts one (a drain's
    /// move) or belongs to none (an instance's state change).
    public var operationKind: PBOperationKind?

    init(operation: BrokerOperation, body: Command.OneOf_Body, why: String, state: ClusterState) {
        operationId = operation.id
        operationKind = operation.kind
        tenantId = operation.tenantID
        self.body = body
        self.why = why
        clientId = Self.clientId(forOperation: operation.id)
        sequence = (state.lastSequence(ofClient: clientId) ?? 0) + 1
    }

    /// A step that is not (yet) an operation's: a drain's move (which starts one) or an
    /// instance's state change. `clientId` is the session that makes it apply once.
    init(clientId: String, tenantId: String, operationId: String, body: Command.OneOf_Body, why: String, state: ClusterState) {
        self.operationId = operationId
        self.tenantId = tenantId
        self.body = body
        self.why = why
        self.clientId = clientId
        sequence = (state.lastSequence(ofClient: clientId) ?? 0) + 1
    }

    public static func clientId(forOperation id: String) -> String { "driver/" + id }

    /// The command to propose, stamped with the leader's time.
    public func command(leaderTimeMs: Int64) -> Command {
        Command(clientId: clientId, sequence: sequence, leaderTimeMs: leaderTimeMs, body)
    }
}
