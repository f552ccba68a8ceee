import Foundation
@preconcurrency import Yams

extension ClusterConfig {
    /// Reads and checks the configuration file at `path` (relative to the working directory).
    /// Relative paths inside it resolve against the file's own directory. Reads nothing else.
    public static func load(path: String) throws(ConfigError) -> ClusterConfig {
        let absolute = FilePath.resolve(path, against: FileManager.default.currentDirectoryPath)
        func fail(_ reason: String) -> ConfigError { ConfigError(file: path, keyPath: "", line: nil, reason: reason) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw fail("no such file")
        }
        guard !isDirectory.boolValue else { throw fail("is a directory, not a configuration file") }
        let size = (try? FileManager.default.attributesOfItem(atPath: absolute)[.size] as? NSNumber)?.intValue ?? 0
        guard size <= fileBytesMax else { throw fail("is \(size) bytes, more than the \(fileBytesMax) a configuration file may have") }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: absolute))
        } catch {
            throw fail("cannot read: \(error.localizedDescription)")
        }
        guard data.count <= fileBytesMax else { throw fail("more than \(fileBytesMax) bytes") }
        guard let text = String(data: data, encoding: .utf8) else { throw fail("is not UTF-8 text") }
        return try parse(yaml: text, baseDirectory: FilePath.directory(of: absolute), file: path, absoluteFile: absolute)
    }

    /// Checks configuration text. `baseDirectory` is where relative paths resolve (a relative
    /// one is taken from the working directory); `file` names the source in errors.
    public static func parse(yaml: String, baseDirectory: String, file: String? = nil) throws(ConfigError) -> ClusterConfig {
        try parse(yaml: yaml, baseDirectory: baseDirectory, file: file, absoluteFile: nil)
    }

    private static func parse(yaml: String, baseDirectory: String, file: String?, absoluteFile: String?) throws(ConfigError) -> ClusterConfig {
        let reader = YAMLReader(file: file)
        let base = FilePath.resolve(baseDirectory, against: FileManager.default.currentDirectoryPath)
        guard yaml.utf8.count <= fileBytesMax else {
            throw reader.error("", line: nil, "is \(yaml.utf8.count) bytes, more than the \(fileBytesMax) a configuration file may have")
        }
        let root: Node
        do {
            guard let node = try Parser(yaml: yaml, resolver: .basic, constructor: .default, encoding: .utf8).singleRoot() else {
                throw reader.error("", line: nil, "the file is empty: expected a mapping with at least 'cluster', 'dataDir', 'tlsDir' and 'peers'")
            }
            root = node
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw syntaxError(error, yaml: yaml, reader: reader)
        } catch {
            throw reader.error("", line: nil, "invalid YAML: \(error)")
        }
        var decoder = ConfigDecoder(reader: reader, baseDirectory: base)
        let config = try decoder.decode(root, file: absoluteFile)
        try ConfigValidator(config: config, reader: reader, lines: decoder.lines).validate()
        return config
    }

    /// libyaml's complaint with its line; the column and context go into the reason.
    private static func syntaxError(_ error: YamlError, yaml: String, reader: YAMLReader) -> ConfigError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let during = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
            // `peer: [::1]:7101` unquoted opens a YAML flow list: the likeliest mistake on such a line.
            let lineText = yaml.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(max(0, mark.line - 1)).first ?? ""
            let hint = lineText.contains("[") && lineText.contains("]:") ? "; an IPv6 address must be quoted: \"[::1]:7101\"" : ""
            return reader.error("", line: mark.line, "invalid YAML at column \(mark.column): \(problem)\(during)\(hint)")
        case .reader(let problem, _, _, _):
            return reader.error("", line: nil, "invalid YAML: \(problem)")
        default:
            return reader.error("", line: nil, "invalid YAML: \(error)")
        }
    }
}
