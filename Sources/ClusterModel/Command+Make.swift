extension Command {
    /// A command ready to propose: the proposer's client session (Raft thesis §6.3) and the
    /// leader's wall-clock time, stamped once here so apply never reads a clock.
    public init(
        clientId: String, sequence: UInt64, leaderTimeMs: Int64,
        _ body: Command.OneOf_Body, skippableIfUnknown: Bool = false
    ) {
        self.init()
        var request = PBRequestId()
        request.clientID = clientId
        request.sequence = sequence
        self.request = request
        self.leaderTimeMs = leaderTimeMs
        self.body = body
        self.skippableIfUnknown = skippableIfUnknown
    }

    /// The bytes of one Raft log entry.
    public func entryBytes() -> [UInt8] {
        do {
            return try serializedBytes()
        } catch {
            preconditionFailure("encoding a command cannot fail: \(error)")
        }
    }
}
