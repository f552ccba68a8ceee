import Foundation

/// A throwaway CA and a server certificate for `peer.test` (and the 127.0.0.1 IP), made with
/// the openssl CLI in a temp directory the caller removes.
struct TestTLS {
    let directory: String
    var caFile: String { directory + "/ca.pem" }
    var certFile: String { directory + "/server.pem" }
    var keyFile: String { directory + "/server.key" }
    static let serverName = "peer.test"

    static func make() throws -> TestTLS {
        let directory = try TestSupport.makeTemporaryDirectory()
        let script = """
        set -e
        cd \(directory)
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 \
          -subj /CN=router-test-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=\(serverName)
        printf 'subjectAltName=DNS:\(serverName),IP:127.0.0.1\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
        """
        try run(["/bin/bash", "-c", script])
        return TestTLS(directory: directory)
    }

    /// Runs a short command to completion; throws with its output if it fails.
    static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure("\(arguments[0]) exited \(process.terminationStatus): \(String(decoding: data.prefix(4096), as: UTF8.self))")
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
