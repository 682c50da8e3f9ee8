// CLIError: a refusal of the command line's, worded for the user.
import Foundation

/// An error with a message for the user (a missing default, a bad argument).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
