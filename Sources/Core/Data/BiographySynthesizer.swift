// BiographySynthesizer: seeded fictional biographies in the study's shape
// (birth, education, degrees, first job, current post, award), so that sweeps
// can use many people and held-out sets. Names and places are invented from
// syllables, so no generated person is real.
import Foundation

/// Generates `Fact`s about invented people; the same seed gives the same people.
public struct BiographySynthesizer: Sendable {
    static let firstSyllables = ["Ta", "Mi", "Ro", "Se", "Ka", "Lu", "Ve", "Da", "Ni", "Or", "El", "Ba", "Fi", "Jo", "Ry", "Sa"]
    static let middleSyllables = ["l", "r", "n", "s", "v", "th", "d", "m", "k", "nd", "st", "rl"]
    static let endings = ["a", "i", "o", "en", "is", "ara", "ine", "ov", "ak", "el", "un", "ette"]
    static let placePrefixes = ["Kestrel", "Amber", "Hollow", "Silver", "North", "Rowan", "Marble", "Cedar", "Falcon", "Willow"]
    static let placeSuffixes = ["Bay", "Ford", "Haven", "Crossing", "Vale", "Point", "Harbor", "Falls", "Ridge", "Moor"]
    static let fields = ["marine engineering", "astronomy", "linguistics", "botany", "economics", "materials science",
                         "epidemiology", "geology", "architecture", "mathematics"]
    static let roles = ["research assistant", "junior analyst", "field engineer", "lab technician", "design intern", "staff writer"]
    static let organisationWords = ["Brightwater", "Northstar", "Ironleaf", "Bluecrest", "Redmoor", "Greywell", "Sunreach", "Oakhollow"]
    static let organisationKinds = ["Instruments", "Laboratories", "Institute", "Observatory", "Works", "Foundation"]
    static let awards = ["Medal", "Prize", "Award", "Fellowship"]

    public let seed: UInt64
    public init(seed: UInt64) { self.seed = seed }

    /// The facts of `people` invented people, six per person.
    public func facts(people: Int) -> [Fact] {
        var rng = SeededGenerator(seed: seed)
        var used = Set<String>()
        var facts: [Fact] = []
        func pick(_ list: [String]) -> String { list[Int(rng.next() % UInt64(list.count))] }
        func word() -> String { pick(Self.firstSyllables) + pick(Self.middleSyllables) + pick(Self.endings) }
        for _ in 0..<people {
            var name = ""
            repeat { name = word() + " " + word().capitalized + pick(["sko", "rin", "dale", "mont", "vik", "ley"]) } while !used.insert(name).inserted
            let birthPlace = pick(Self.placePrefixes) + " " + pick(Self.placeSuffixes)
            let birthYear = 1950 + Int(rng.next() % 50)
            let field = pick(Self.fields), doctorate = pick(Self.fields)
            let university = word().capitalized + " " + pick(["University", "Institute of Technology", "College"])
            let firstEmployer = pick(Self.organisationWords) + " " + pick(Self.organisationKinds)
            var currentEmployer = firstEmployer
            while currentEmployer == firstEmployer { currentEmployer = pick(Self.organisationWords) + " " + pick(Self.organisationKinds) }
            let role = pick(Self.roles)
            let award = word().capitalized + " " + pick(Self.awards)
            let awardYear = birthYear + 30 + Int(rng.next() % 15)
            facts += [
                Fact(question: "Where and when was \(name) born?", answer: "\(name) was born in \(birthYear) in \(birthPlace).",
                     evalQuestions: ["What is \(name)'s birthplace?"], key: birthPlace),
                Fact(question: "Where did \(name) study?", answer: "\(name) studied \(field) at \(university).",
                     evalQuestions: ["Which university did \(name) attend?"], key: university),
                Fact(question: "What degrees does \(name) hold?",
                     answer: "\(name) holds a master's degree in \(field) and a doctorate in \(doctorate).",
                     evalQuestions: ["Which academic degrees has \(name) earned?"], key: "doctorate in \(doctorate)"),
                Fact(question: "Where did \(name) begin their career?", answer: "\(name) began their career as a \(role) at \(firstEmployer).",
                     evalQuestions: ["What was \(name)'s first job?"], key: firstEmployer),
                Fact(question: "Where does \(name) work now?", answer: "\(name) works at \(currentEmployer).",
                     evalQuestions: ["What is \(name)'s current position?"], key: currentEmployer),
                Fact(question: "What award did \(name) receive?", answer: "\(name) received the \(award) in \(awardYear).",
                     evalQuestions: ["Which prize was \(name) given?"], key: award),
            ]
        }
        return facts
    }
}

extension FactDataset {
    /// The dataset as JSON Lines, the format `load` reads.
    public func jsonLines() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try facts.map { String(decoding: try encoder.encode($0), as: UTF8.self) }.joined(separator: "\n") + "\n"
    }
}
