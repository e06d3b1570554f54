import FerryCore
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Testing

/// The operator features on a PostgreSQL hub, through real `ferry` processes
/// (issues 10/11): users added at one hub process sign in at the other, a
/// per-user CLI token pages conflicts and fixes quarantine there, and a console
/// session opened at one process works at the other and after a restart.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct PostgresOperatorEndToEndTests {
    static let commune = "24781"

    func serve(_ sb: Sandbox, _ dir: String, _ name: String) async throws -> Sandbox.Hub {
        let urlFile = dir + "/hub.url"
        try? FileManager.default.removeItem(atPath: urlFile)
        let p = try sb.start(["hub", "serve", "--dir", dir, "--port", "0", "--password-cost", "test"], name: name)
        var url: String?
        let up = try await waitUntil(timeout: 30) {
            guard p.isRunning else { return true }
            url = (try? String(contentsOfFile: urlFile, encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines)
            return url?.isEmpty == false
        }
        guard up, p.isRunning, let url else { throw HarnessError("\(name) did not start: \(sb.log(name))") }
        return Sandbox.Hub(dir: dir, url: url, process: p)
    }

    /// Logs in through the console form; the session cookie.
    static func login(_ port: Int, user: String, password: String) throws -> String? {
        let form = try Raw.request(port, "GET", "/login")
        guard let csrf = form.cookie("ferry_login_csrf") else { return nil }
        let r = try Raw.request(
            port, "POST", "/login", headers: ["Cookie": "ferry_login_csrf=\(csrf)"],
            form: ["csrf": csrf, "user": user, "password": password])
        return r.status == 303 ? r.cookie("ferry_session") : nil
    }

    @Test func accountsTokensPagesQuarantineAndSessionsWorkAcrossTwoHubProcessesOnOneDatabase() async throws {
        let sb = try Sandbox("pg-operators")
        defer { sb.close() }
        let url = try PostgresTestServer.shared().makeDatabase("ops")
        let dirA = sb.path("hubA")
        try await sb.ok(["hub", "init", "--dir", dirA, "--store", url])
        let dirB = sb.path("hubB")
        try FileManager.default.createDirectory(
            atPath: dirB, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for f in ["hub.key", "operator.token", "hub.store"] {
            try FileManager.default.copyItem(atPath: dirA + "/" + f, toPath: dirB + "/" + f)
        }
        var a = try await serve(sb, dirA, "hubA")
        let b = try await serve(sb, dirB, "hubB")
        let (portA, portB) = (try #require(URL(string: a.url)?.port), try #require(URL(string: b.url)?.port))
        let admin = try String(contentsOfFile: dirA + "/operator.token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)

        // A user added through hub A (CLI and API) is listed, and signs in, at hub B.
        try await sb.ok(["hub", "users", "add", "vic", "--role", "viewer", "--hub-dir", dirA])
        let added = try Raw.request(
            portA, "POST", "/v1/ops/users", headers: ["Authorization": "Bearer \(admin)"],
            body: #"{"name":"lan","role":"operator","password":"mật-khẩu-dài"}"#)
        #expect(added.status == 200, "\(added.body)")
        let list = try await sb.ok(["hub", "users", "list", "--hub-dir", dirB])
        #expect(list.contains("lan  operator  enabled") && list.contains("vic  viewer  enabled"), "\(list)")
        let token = try await sb.ok(["hub", "users", "token", "lan", "--hub-dir", dirA])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.hasPrefix("fop_"))
        let h = ["--hub", b.url, "--token", token]

        // Conflicts on three records: the agent (through hub A) and lan (at hub B) edit one field concurrently.
        let ag = try await sb.enrollAgent("ag", hub: a, commune: Self.commune)
        var made: [String] = []
        for (i, name) in ["Nguyễn Thị Thu Hà", "Trần Văn Long An", "Lê Thị Ánh Hồng"].enumerated() {
            made.append(
                try await sb.ok([
                    "records", "add", "owner_name=\(name)", "owner_id=06812345678\(i)", "status=draft", "--dir", ag,
                ]).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        try await sb.ok(["agent", "sync", "--dir", ag])
        for rid in made {
            try await sb.ok(["records", "edit", rid, "status=verified", "--at-hub"] + h)
            try await sb.ok(["records", "edit", rid, "status=submitted", "--dir", ag])
        }
        try await sb.ok(["agent", "sync", "--dir", ag])
        let first = try decodeJSON(
            PageV1<ConflictReport>.self, try await sb.ok(["conflicts", "list", "--limit", "2", "--json"] + h))
        #expect(first.items.count == 2 && first.remaining == 1, "\(first.items.map(\.record)) \(first.remaining)")
        let cursor = try #require(first.nextCursor)
        let rest = try decodeJSON(
            PageV1<ConflictReport>.self,
            try await sb.ok(["conflicts", "list", "--limit", "2", "--cursor", cursor, "--json"] + h))
        #expect(rest.items.count == 1 && rest.remaining == 0 && rest.nextCursor == nil)
        #expect((first.items + rest.items).map(\.record) == made.sorted(), "key order, each once, across hubs")
        let text = try await sb.ok(["conflicts", "list", "--limit", "2", "--hub", a.url, "--token", token])
        #expect(text.contains("1 more"), "the text says more exist: \(text)")

        // Quarantine: v2 drops a choice, records move to v2, the agent (still on v1) writes it.
        try await publishFormDroppingSubmitted(sb, hubDir: dirA)
        try await sb.ok(["records", "edit", made[0], "status=submitted", "--dir", ag])
        try await sb.ok(["agent", "sync", "--dir", ag])
        let q = try decodeJSON(PageV1<QuarantineEntry>.self, try await sb.ok(["quarantine", "list", "--json"] + h))
        let entry = try #require(q.items.first { $0.record == made[0] && $0.field == "status" }, "\(q.items)")
        try await sb.ok(["quarantine", "fix", String(entry.id), "needs_fix", "--note", "checked by phone"] + h)
        let again = try await sb.run([
            "quarantine", "fix", String(entry.id), "verified", "--hub", a.url, "--token", token,
        ])
        #expect(again.status != 0, "an entry is fixed once, whichever hub is asked: \(again.text)")
        let all = try decodeJSON(
            PageV1<QuarantineEntry>.self,
            try await sb.ok(["quarantine", "list", "--status", "all", "--json", "--hub-dir", dirA]))
        let closed = try #require(all.items.first { $0.id == entry.id })
        #expect(closed.status == "fixed" && closed.closedBy == "lan" && closed.note == "checked by phone")

        // A console session opened at hub A works at hub B, and at A after a restart.
        let session = try #require(try Self.login(portA, user: "lan", password: "mật-khẩu-dài"))
        let atB = try Raw.request(portB, "GET", "/conflicts", headers: ["Cookie": "ferry_session=\(session)"])
        #expect(atB.status == 200 && atB.body.contains("lan"), "status \(atB.status)")
        let anonymous = try Raw.request(portB, "GET", "/conflicts")
        #expect(anonymous.status == 303, "without the cookie the console asks for a login")
        // A one-time login link made at hub A opens the console at hub B, once.
        let link = try Raw.request(
            portA, "POST", "/v1/ops/login-links", headers: ["Authorization": "Bearer \(token)"], body: "")
        let linkPath = try #require(Raw.field("path", link.body), "\(link.status) \(link.body)")
        let opened = try Raw.request(portB, "GET", linkPath)
        let linkSession = try #require(
            opened.cookie("ferry_session"), "the link made at A opens at B: \(opened.status)")
        let viaLink = try Raw.request(portB, "GET", "/conflicts", headers: ["Cookie": "ferry_session=\(linkSession)"])
        #expect(viaLink.status == 200 && viaLink.body.contains("lan"))
        for port in [portA, portB] {
            #expect(try Raw.request(port, "GET", linkPath).cookie("ferry_session") == nil, "a link works once")
        }
        // The link's secret is not a session cookie.
        let secret = String(linkPath.split(separator: "=").last ?? "")
        let asCookie = try Raw.request(portA, "GET", "/conflicts", headers: ["Cookie": "ferry_session=\(secret)"])
        #expect(asCookie.status == 303)
        sb.stop(a.process)
        a = try await serve(sb, dirA, "hubA")
        let portA2 = try #require(URL(string: a.url)?.port)
        let restarted = try Raw.request(portA2, "GET", "/quarantine", headers: ["Cookie": "ferry_session=\(session)"])
        #expect(restarted.status == 200, "a restart keeps the operator signed in")
        // Disabling the user at B ends its session and token at A.
        try await sb.ok(["hub", "users", "disable", "lan", "--hub-dir", dirB])
        let ended = try Raw.request(portA2, "GET", "/conflicts", headers: ["Cookie": "ferry_session=\(session)"])
        #expect(ended.status == 303)
        let refused = try await sb.run(["conflicts", "list", "--hub", a.url, "--token", token])
        #expect(refused.status != 0)
    }
}
