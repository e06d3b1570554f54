import FerryCore
import FerryCrypto
import FerryHub
import FerryStore
import FerryTesting
import Foundation
import Testing

/// Operator accounts in the SQLite hub store, and the role each operator request needs.
struct OperatorAccountTests {
    @Test func accountsTokensAndTheOperatorLogPersistAndDisablingEndsTokens() throws {
        let dir = try TempDir("operators")
        defer { dir.remove() }
        let clock = ManualClock()
        let store = try SQLiteHubStore(path: dir.file("hub.sqlite"), wall: clock)
        let hash = try #require(PasswordHash.hash("lan-password", cost: .test))
        try store.addOperator(
            OperatorAccount(name: "lan", role: .operator, disabled: false, createdMs: 1, passwordHash: hash))
        #expect(throws: HubError.self) {
            try store.addOperator(
                OperatorAccount(name: "lan", role: .admin, disabled: false, createdMs: 2, passwordHash: nil))
        }
        let digest = [UInt8](repeating: 7, count: 32)
        try store.addOperatorToken(
            name: "lan", tokenHash: digest, label: "cli", expiresMs: clock.nowMillis() + 60_000)
        #expect(try store.operatorAccount(tokenHash: digest)?.name == "lan")
        #expect(try store.operatorAccount(tokenHash: [UInt8](repeating: 8, count: 32)) == nil)

        try store.logOperatorAction(
            OperatorAction(atMs: 5, user: "lan", action: "conflicts/resolve", record: "r1", detail: "field=status"))
        try store.logOperatorAction(
            OperatorAction(atMs: 6, user: "lan", action: "records", record: "r2", detail: "fields=a"))

        // Reopened: everything is still there.
        let reopened = try SQLiteHubStore(path: dir.file("hub.sqlite"), wall: clock)
        let lan = try #require(try reopened.operatorAccount(name: "lan"))
        #expect(lan.role == .operator && !lan.disabled && lan.passwordHash == hash)
        #expect(try reopened.operatorActions(record: "r1", limit: 10).map(\.detail) == ["field=status"])
        #expect(try reopened.operatorActions(record: nil, limit: 10).map(\.record) == ["r2", "r1"])

        try reopened.setOperatorDisabled(name: "lan", disabled: true)
        #expect(try reopened.operatorAccount(tokenHash: digest) == nil, "a disabled user's token stops working")
        try reopened.setOperatorDisabled(name: "lan", disabled: false)
        #expect(try reopened.operatorAccount(tokenHash: digest)?.name == "lan")
        clock.advance(by: 60_001)
        #expect(try reopened.operatorAccount(tokenHash: digest) == nil, "an expired token stops working")
        #expect(throws: HubError.self) { try reopened.setOperatorDisabled(name: "nobody", disabled: true) }
    }

    /// One-time login links live in the store (issue 11 follow-up): taken once, never after expiry.
    @Test func aTakenSessionIsGoneAndAnExpiredOneIsNeverTaken() throws {
        let dir = try TempDir("operator-links")
        defer { dir.remove() }
        let clock = ManualClock()
        let store = try SQLiteHubStore(path: dir.file("hub.sqlite"), wall: clock)
        let (a, b) = ([UInt8](repeating: 1, count: 32), [UInt8](repeating: 2, count: 32))
        for h in [a, b] {
            try store.addOperatorSession(
                OperatorSession(
                    idHash: h, name: "lan", role: .operator, csrf: "", expiresMs: clock.nowMillis() + 120_000),
                keep: 100)
        }
        let taken = try #require(try store.takeOperatorSession(idHash: a))
        #expect(taken.name == "lan" && taken.role == .operator)
        #expect(try store.takeOperatorSession(idHash: a) == nil, "once")
        #expect(try store.operatorSession(idHash: a) == nil)
        clock.advance(by: 120_001)
        #expect(try store.takeOperatorSession(idHash: b) == nil, "never after expiry")
        #expect(try store.takeOperatorSession(idHash: [UInt8](repeating: 3, count: 32)) == nil)
    }

    @Test func viewersReadOperatorsResolveAndEditAdminsManage() {
        func need(_ m: String, _ p: String) -> OperatorRole {
            OperatorAccess.requiredRole(method: m, path: p.split(separator: "/").map(String.init))
        }
        #expect(need("GET", "status") == .viewer)
        #expect(need("GET", "conflicts") == .viewer)
        #expect(need("GET", "records/abc") == .viewer)
        #expect(need("GET", "users") == .admin)
        #expect(need("POST", "conflicts/resolve") == .operator)
        #expect(need("POST", "records") == .operator)
        #expect(need("POST", "records/abc") == .operator)
        #expect(need("POST", "quarantine/3/release") == .operator)
        #expect(need("POST", "login-links") == .viewer)
        for admin in ["users", "users/lan/disable", "forms", "campaigns", "tokens", "agents/a-1/revoke", "anything"] {
            #expect(need("POST", admin) == .admin, "\(admin)")
        }
        #expect(OperatorRole.admin > .operator && OperatorRole.operator > .viewer)
    }
}
