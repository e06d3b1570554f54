import FerryCrypto
import FerryHub
import FerryProtocol
import FerryStore
import Foundation
import Logging
import Testing

/// protocol/openapi.json against the hub's routes: every route documented,
/// every documented route handled, and the served copy the same document.
struct OpenAPITests {
    static var repo: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static func documented() throws -> Set<String> {
        let data = try Data(contentsOf: repo.appendingPathComponent("protocol/openapi.json"))
        let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        var out = Set<String>()
        for (p, methods) in paths { for m in methods.keys { out.insert("\(m.uppercased()) \(p)") } }
        return out
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedRouteIsARoute() throws {
        let table = Set(HubRoutes.all.map { "\($0.method) \($0.path)" })
        let doc = try Self.documented()
        #expect(table.subtracting(doc).isEmpty, "served but not documented: \(table.subtracting(doc).sorted())")
        #expect(doc.subtracting(table).isEmpty, "documented but not served: \(doc.subtracting(table).sorted())")
        #expect(doc.count >= 30)
    }

    @Test func theServedDocumentIsProtocolOpenapiJSON() throws {
        let file = try String(contentsOf: Self.repo.appendingPathComponent("protocol/openapi.json"), encoding: .utf8)
        #expect(
            OpenAPIDocument.json.trimmingCharacters(in: .whitespacesAndNewlines)
                == file.trimmingCharacters(in: .whitespacesAndNewlines), "run `make openapi`")
    }

    @Test func everyDocumentedOperatorRouteIsHandledAndOthersAreNot() throws {
        let dir = NSTemporaryDirectory() + "ferry-openapi-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteHubStore(path: dir + "/hub.sqlite")
        let service = HubService(
            store: store, identity: Identity(), operatorToken: "t", logger: Logger(label: "test"))
        func unrouted(_ r: HubReply) -> Bool {
            r.status == 404 && String(decoding: r.body, as: UTF8.self).contains("no operator endpoint")
        }
        for (m, p) in HubRoutes.all where p.hasPrefix("/v1/ops/") {
            let parts = p.dropFirst("/v1/ops/".count).split(separator: "/").map {
                $0.hasPrefix("{")
                    ? ($0 == "{version}" || $0 == "{id}" && p.contains("quarantine") ? "1" : "x") : String($0)
            }
            let r = service.operatorRequest(method: m, path: parts, query: [:], body: Array("{}".utf8))
            #expect(!unrouted(r), "\(m) \(p) is documented but not handled")
            let text = String(decoding: r.body, as: UTF8.self)
            #expect(r.status < 500, "\(m) \(p) answered \(r.status): \(text)")
        }
        #expect(unrouted(service.operatorRequest(method: "GET", path: ["nothing"], query: [:], body: [])))
        #expect(unrouted(service.operatorRequest(method: "DELETE", path: ["records"], query: [:], body: [])))
    }
}
