import Foundation
import PeerConfig
import Testing

/// A valid three-peer config; tests change one thing in it at a time.
let validYAML = """
    cluster: test-1
    dataDir: data
    tlsDir: tls
    runDir: run
    peers:
      - id: 1
        peer: 127.0.0.1:7101
        api: 127.0.0.1:7201
        router: 127.0.0.1:7301
      - id: 2
        peer: 127.0.0.1:7102
        api: 127.0.0.1:7202
        router: 127.0.0.1:7302
      - id: 3
        peer: 127.0.0.1:7103
        api: 127.0.0.1:7203
        router: 127.0.0.1:7303
    """

/// `validYAML` with the first occurrence of `old` replaced by `new` (which must be there).
func validYAML(replacing old: String, with new: String) -> String {
    precondition(validYAML.contains(old), "'\(old)' is not in validYAML")
    guard let range = validYAML.range(of: old) else { return validYAML }
    return validYAML.replacingCharacters(in: range, with: new)
}

let testBase = "/etc/peer"

func parse(_ yaml: String) throws(ConfigError) -> ClusterConfig {
    try ClusterConfig.parse(yaml: yaml, baseDirectory: testBase, file: "test.yaml")
}

/// Parses `yaml`, which must be refused with exactly this key path and reason (and line, if given).
func expectRefused(
    _ yaml: String, keyPath: String, reason: String, line: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        let config = try parse(yaml)
        Issue.record("accepted, expected '\(keyPath): \(reason)'; got \(config)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.file == "test.yaml", sourceLocation: sourceLocation)
        #expect(error.keyPath == keyPath, "\(error)", sourceLocation: sourceLocation)
        #expect(error.reason == reason, "\(error)", sourceLocation: sourceLocation)
        if let line { #expect(error.line == line, "\(error)", sourceLocation: sourceLocation) }
    }
}

/// A fresh directory under the system temp dir, removed by `remove()`. Its path has symlinks
/// resolved, so it compares equal to the paths `peer` prints.
struct TempDir {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() + "peerconfig-test-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(String(cString: strerror(errno)))")
        let raw = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        path = URL(fileURLWithPath: raw).resolvingSymlinksInPath().path
    }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: file(name), atomically: false, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository root, found from this file's path (Tests/PeerConfigTests/Support.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
