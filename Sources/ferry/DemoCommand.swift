import ArgumentParser
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Run a hub and three agents on this machine.")
    func run() async throws { throw UserError("not yet") }
}
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Benchmarks.")
    func run() async throws { throw UserError("not yet") }
}
