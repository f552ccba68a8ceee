/// A minimal ustar archive writer: directories and regular files, for handing bootstrap files
/// to a container (the Engine's `PUT /containers/{id}/archive` takes a tar stream). Names are
/// checked by `Bootstrap` and stay under 100 bytes, so no prefix field or extension is needed.
struct TarArchive {
    private(set) var bytes: [UInt8] = []

    mutating func addDirectory(_ name: String, mode: Int = 0o700) {
        appendHeader(name: name.hasSuffix("/") ? name : name + "/", mode: mode, size: 0, type: UInt8(ascii: "5"))
    }

    mutating func addFile(_ name: String, contents: [UInt8], mode: Int = 0o600) {
        appendHeader(name: name, mode: mode, size: contents.count, type: UInt8(ascii: "0"))
        bytes += contents
        bytes += [UInt8](repeating: 0, count: (512 - contents.count % 512) % 512)
    }

    /// The archive with its end marker (two zero blocks).
    var finished: [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }

    private mutating func appendHeader(name: String, mode: Int, size: Int, type: UInt8) {
        precondition(name.utf8.count < 100, "tar name too long: \(name)")
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ value: [UInt8], at offset: Int) {
            for (i, byte) in value.enumerated() { header[offset + i] = byte }
        }
        func octal(_ value: Int, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
        }
        put(Array(name.utf8), at: 0)
        put(octal(mode, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)  // uid: root
        put(octal(0, width: 8), at: 116)  // gid
        put(octal(size, width: 12), at: 124)
        put(octal(0, width: 12), at: 136)  // mtime
        put([UInt8](repeating: 0x20, count: 8), at: 148)  // checksum, as spaces while summing
        header[156] = type
        put(Array("ustar".utf8) + [0], at: 257)
        put(Array("00".utf8), at: 263)
        let sum = header.reduce(0) { $0 + Int($1) }
        put(Array(String(sum, radix: 8).leftPadded(to: 6).utf8) + [0, 0x20], at: 148)
        bytes += header
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
