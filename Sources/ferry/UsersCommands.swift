import ArgumentParser
import FerryHub
import FerryStore
import Foundation

/// `ferry hub users`: operator accounts (admin only; the bootstrap operator.token is admin).
struct HubUsers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Manage operator accounts: viewer, operator, admin.",
        subcommands: [UsersAdd.self, UsersList.self, UsersDisable.self, UsersEnable.self, UsersToken.self])
}

struct UsersAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a user. The password is read from standard input (one line), never from the command line.")
    @Argument(help: "User name (letters, digits, '.', '-', '_').") var name: String
    @Option(help: "viewer (reads), operator (resolves and edits), admin (users, forms, campaigns, agents).")
    var role = "viewer"
    @Flag(help: "Read the console password from standard input.") var passwordStdin = false
    @OptionGroup var hub: HubOptions
    @Flag var json = false

    func run() async throws {
        var password: String?
        if passwordStdin {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                throw UserError("--password-stdin: standard input held no password line")
            }
            password = line
        }
        let u = try await hub.client().call(
            "POST", "users", body: UserAddRequest(name: name, role: role, password: password), as: UserJSON.self)
        if json { return try printJSON(u) }
        print("User \(u.name) added as \(u.role)\(u.hasPassword ? " (console password set)" : " (token only)").")
        print("CLI token: ferry hub users token \(u.name)")
    }
}

struct UsersList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List operator accounts.")
    @OptionGroup var hub: HubOptions
    @Flag var json = false

    func run() async throws {
        let users = try await hub.client().call("GET", "users", as: [UserJSON].self)
        if json { return try printJSON(users) }
        if users.isEmpty { print("No users yet (operator.token acts as admin). Add one: ferry hub users add NAME") }
        for u in users {
            print(
                "\(u.name)  \(u.role)  \(u.disabled ? "DISABLED" : "enabled")  \(u.hasPassword ? "password" : "token only")"
            )
        }
    }
}

struct UsersDisable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable", abstract: "Disable a user: its tokens and console sessions stop working at once.")
    @Argument var name: String
    @OptionGroup var hub: HubOptions

    func run() async throws {
        _ = try await hub.client().call("POST", "users/\(name)/disable", as: [String: String].self)
        print("User \(name) disabled.")
    }
}

struct UsersEnable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enable", abstract: "Enable a disabled user again.")
    @Argument var name: String
    @OptionGroup var hub: HubOptions

    func run() async throws {
        _ = try await hub.client().call("POST", "users/\(name)/enable", as: [String: String].self)
        print("User \(name) enabled.")
    }
}

struct UsersToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Issue an API token for a user's CLI (printed once; the hub keeps only a hash).")
    @Argument var name: String
    @Option(help: "Days the token stays valid (1–366).") var days = 90
    @Option(help: "A label to tell tokens apart.") var label = "cli"
    @OptionGroup var hub: HubOptions
    @Flag var json = false

    func run() async throws {
        let t = try await hub.client().call(
            "POST", "users/\(name)/tokens", body: UserTokenRequest(label: label, days: days),
            as: UserTokenResponse.self)
        if json { return try printJSON(t) }
        print(t.token)
    }
}
