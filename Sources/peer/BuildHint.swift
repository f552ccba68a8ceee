/// What to tell an operator whose `peer` binary lacks a sibling it needs (`peer-exec`,
/// `tenant-app`, `peer-cluster-bench`): the exact command that builds it where this binary was
/// built. SwiftPM keeps only the last of several `--product` options, so each product is named
/// in a command of its own (`make build` builds every product a cluster needs).
enum BuildHint {
    /// The products of this package that `peer` starts from its own directory.
    static let siblingProducts: Set<String> = ["peer-exec", "tenant-app", "peer-cluster-bench"]

    /// `directory` is the folder of the running `peer` binary: `.build/debug`, `.build/release`
    /// or their `<triple>/<configuration>` forms when built by SwiftPM, anything when installed.
    static func command(building product: String, besideBinaryIn directory: String) -> String {
        switch directory.split(separator: "/").last {
        case "release":
            return "`swift build -c release --product \(product)` (or `make build CONFIG=release`)"
        case "debug":
            return "`swift build --product \(product)` (or `make build`)"
        default:
            return "`swift build -c release --product \(product)` and install it beside peer in \(directory)"
        }
    }
}
