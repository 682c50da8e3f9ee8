// CheckpointConfinement: a checkpoint path names a file inside the run's
// checkpoint directory, once `..` and symlinks are resolved. The coordinator
// refuses to store another path, and a worker refuses to read one: a
// compromised peer cannot make the other side copy an arbitrary file
// (`/etc/shadow`, another run's checkpoints) as a checkpoint.
import Foundation

public enum CheckpointConfinement {
    /// `directory` as paths inside it are compared: absolute, standardized, symlinks resolved.
    public static func resolved(_ directory: URL) -> URL {
        directory.standardizedFileURL.resolvingSymlinksInPath()
    }

    /// The file `path` names, standardized and with its symlinks resolved (as far as it exists).
    public static func resolvedFile(_ path: String) -> URL {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath()
    }

    /// nil if `path` lies inside `directory` (already `resolved`), else why not.
    public static func problem(_ path: String, in directory: URL) -> String? {
        guard path.hasPrefix("/") else { return "checkpoint path \(path) is not absolute" }
        let root = directory.path.hasSuffix("/") ? directory.path : directory.path + "/"
        let file = resolvedFile(path).path
        guard file.hasPrefix(root) else {
            return "checkpoint path \(path) (\(file)) is outside the checkpoint directory \(directory.path)"
        }
        return nil
    }
}
