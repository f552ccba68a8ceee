import NIOCore

/// Frames are a 4-byte big-endian length, then that many bytes of one serialized `Frame`.
public enum Framing {
    public static let lengthPrefixBytes = 4
    /// Default upper bound on one frame's body: a 1 MiB snapshot chunk plus generous headroom.
    public static let frameBytesMaxDefault = 8 * 1024 * 1024

    /// Pulls one frame body off the front of `buffer`, or returns nil when more bytes are needed.
    /// Throws before buffering anything larger than `frameBytesMax`, so a peer cannot make us
    /// allocate more than that by announcing a huge length.
    public static func nextFrame(from buffer: inout ByteBuffer, frameBytesMax: Int) throws(FrameError) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        guard Int(length) <= frameBytesMax else {
            throw FrameError.tooLarge(lengthBytes: Int(length), frameBytesMax: frameBytesMax)
        }
        guard buffer.readableBytes >= lengthPrefixBytes + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: lengthPrefixBytes)
        return buffer.readSlice(length: Int(length))
    }

    /// Appends `body` as one frame. The caller guarantees `body.count <= frameBytesMax`.
    public static func writeFrame(_ body: [UInt8], into buffer: inout ByteBuffer) {
        precondition(body.count <= Int(UInt32.max), "frame of \(body.count) bytes cannot be length-prefixed")
        buffer.writeInteger(UInt32(body.count), endianness: .big)
        buffer.writeBytes(body)
    }
}

/// A framing violation. It ends that connection only.
public enum FrameError: Error, Sendable, Hashable, CustomStringConvertible {
    case tooLarge(lengthBytes: Int, frameBytesMax: Int)

    public var description: String {
        switch self {
        case .tooLarge(let n, let max): return "frame of \(n) bytes exceeds frameBytesMax \(max)"
        }
    }
}

/// Splits the inbound byte stream into frame bodies (thin: the rule lives in `Framing`).
public final class FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let frameBytesMax: Int

    public init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }

    public func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Framing.nextFrame(from: &buffer, frameBytesMax: frameBytesMax) else {
            return .needMoreData
        }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at EOF is simply dropped with the connection.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
