import NIOCore
import PeerWire
import Raft

/// A bounded FIFO of messages for one peer. Overflow policy: when adding a message would pass
/// `messagesMax` or `bytesMax`, that message is refused (drop-newest). Raft tolerates loss and
/// retransmits from its own state, so dropping is safe, while blocking would stall the core; the
/// oldest messages are kept because they are the ones the peer needs first (an append batch
/// must arrive before the ones that build on it).
struct SendQueue {
    let messagesMax: Int
    let bytesMax: Int
    private(set) var messages = CircularBuffer<Message>()
    private(set) var bytes = 0

    init(messagesMax: Int, bytesMax: Int) {
        precondition(messagesMax > 0 && bytesMax > 0, "send queue bounds must be positive")
        self.messagesMax = messagesMax
        self.bytesMax = bytesMax
    }

    var isEmpty: Bool { messages.isEmpty }
    var count: Int { messages.count }

    /// False (and nothing stored) when the message does not fit. A single message larger than
    /// `bytesMax` is still accepted into an empty queue so it is not refused forever.
    mutating func push(_ m: Message) -> Bool {
        let size = Self.sizeBytes(of: m)
        guard messages.count < messagesMax, bytes + size <= bytesMax || messages.isEmpty else { return false }
        messages.append(m)
        bytes += size
        return true
    }

    /// Takes messages from the front until about `bytesBudget` bytes are taken (at least one).
    mutating func pop(bytesBudget: Int) -> [Message] {
        var out: [Message] = []
        var taken = 0
        while let m = messages.first, out.isEmpty || taken + Self.sizeBytes(of: m) <= bytesBudget {
            messages.removeFirst()
            let size = Self.sizeBytes(of: m)
            bytes -= size
            taken += size
            out.append(m)
        }
        return out
    }

    /// Empties the queue, returning how many messages were dropped.
    mutating func removeAll() -> Int {
        let n = messages.count
        messages.removeAll()
        bytes = 0
        return n
    }

    /// Approximate encoded size: payloads plus a fixed header allowance per message.
    static func sizeBytes(of m: Message) -> Int {
        let headerBytes = 64
        return headerBytes + m.entries.reduce(0) { $0 + $1.sizeBytes } + (m.snapshot?.data.count ?? 0)
    }
}
