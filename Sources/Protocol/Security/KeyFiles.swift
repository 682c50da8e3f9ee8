// KeyFiles: the text files that hold keys (format in docs/security.md).
//   NAME.key   `public-key = Z85` and `secret-key = Z85`; mode 0600, refused when group or others may read it
//   NAME.pub   `public-key = Z85`; what is copied to the other host
//   allow-list one worker public key per line, `Z85 NAME`; mode 0600, refused like a key file
// Lines starting with `#` are comments. Every file is written 0600 from its creation (never chmod'ed after).
import Foundation

public enum KeyFiles {
    /// Writes `NAME.key` and `NAME.pub` in `directory` (made 0700 if missing); refuses to overwrite.
    public static func create(_ pair: CurveKeyPair, name: String, in directory: URL) throws(KeyError) -> (secret: URL, public: URL) {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), !name.hasPrefix(".") else {
            throw KeyError("key name '\(name)' must be letters, digits, '-', '_' or '.' (not starting with '.')")
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw KeyError("\(directory.path): cannot create the key directory: \(error.localizedDescription)")
        }
        let secret = directory.appendingPathComponent("\(name).key"), shared = directory.appendingPathComponent("\(name).pub")
        try writeNew(secret, "# factsweep CURVE key pair '\(name)': keep on this host only\npublic-key = \(pair.publicKey)\nsecret-key = \(pair.secretKey)\n")
        try writeNew(shared, "# factsweep CURVE public key '\(name)'\npublic-key = \(pair.publicKey)\n")
        return (secret, shared)
    }

    /// Reads a `.key` file; refuses one that group or others may read.
    public static func readKeyPair(_ url: URL) throws(KeyError) -> CurveKeyPair {
        try requirePrivate(url)
        let fields = try read(url)
        guard let publicKey = fields["public-key"], let secretKey = fields["secret-key"] else {
            throw KeyError("\(url.path): a key file needs 'public-key = …' and 'secret-key = …' lines (make one with `factsweep keys create`)")
        }
        do { return try CurveKeyPair(publicKey: publicKey, secretKey: secretKey) } catch { throw KeyError("\(url.path): \(error)") }
    }

    /// The public key in a `.pub` or `.key` file, or `reference` itself when it is a Z85 key.
    public static func publicKey(_ reference: String) throws(KeyError) -> String {
        if let key = try? Curve.checkedKey(reference, what: "key"), !FileManager.default.fileExists(atPath: reference) { return key }
        let url = URL(fileURLWithPath: reference)
        guard let key = try read(url)["public-key"] else {
            throw KeyError("\(url.path): no 'public-key = …' line (give a .pub file written by `factsweep keys create`, or the key itself)")
        }
        do { return try Curve.checkedKey(key, what: "public key") } catch { throw KeyError("\(url.path): \(error)") }
    }

    /// Refuses a file that group or others may read or write: chmod 600 it.
    static func requirePrivate(_ url: URL) throws(KeyError) {
        var info = stat()
        guard stat(url.path, &info) == 0 else {
            throw KeyError("\(url.path): cannot read: \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o077 != 0 {
            throw KeyError("\(url.path): readable or writable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); run `chmod 600 \(url.path)`")
        }
    }

    /// `name = value` lines, comments and blank lines skipped.
    private static func read(_ url: URL) throws(KeyError) -> [String: String] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw KeyError("\(url.path): cannot read: \(error.localizedDescription)") }
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            fields[parts[0].trimmingCharacters(in: .whitespaces)] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// Creates `url` with mode 0600 and `text`; fails if it exists.
    static func writeNew(_ url: URL, _ text: String) throws(KeyError) {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else {
            throw KeyError("\(url.path): cannot create: \(String(cString: strerror(errno)))\(errno == EEXIST ? " (remove it first to replace it)" : "")")
        }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard write(descriptor, bytes, bytes.count) == bytes.count else {
            throw KeyError("\(url.path): cannot write: \(String(cString: strerror(errno)))")
        }
    }

    /// Replaces `url` with `text` atomically (a new 0600 file renamed over it).
    static func replace(_ url: URL, _ text: String) throws(KeyError) {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        try writeNew(temporary, text)
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary.path)
            throw KeyError("\(url.path): cannot replace: \(reason)")
        }
    }
}
