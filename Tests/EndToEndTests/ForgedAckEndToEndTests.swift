import FerryAgent
import FerryStore
import Foundation
import Testing

/// Something between the agent and the hub (a captive portal, a forger) that
/// answers uploads with a well-formed but unsigned acknowledgement must not
/// make the agent drop queued writes (SPEC §9.3).
struct ForgedAckEndToEndTests {
    static let commune = "24781"

    @Test func anUnsignedAcknowledgementReleasesNothing() async throws {
        let sb = try Sandbox("forged-ack")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let csv = try sampleCSV(sb, name: "a.csv", seed: 61, count: 5)
        try await sb.ok(["records", "import", csv.path, "--dir", a])

        // A fake "hub" on loopback that acknowledges everything without the hub's signature.
        let port = try freePort()
        let script = sb.path("fake_hub.py")
        try """
        import http.server, json, sys
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get('Content-Length', 0)))
                body = json.dumps({"status": "applied", "cursor": 1000000, "merged": 5, "quarantined": 0,
                                   "conflicts_open": 0, "signature": "00" * 64}).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *a):
                pass
        http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let fake = Process()
        fake.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        fake.arguments = ["python3", script, String(port)]
        try fake.run()
        defer {
            // SIGKILL: a child of the test runner may inherit a blocked SIGTERM.
            kill(fake.processIdentifier, SIGKILL)
            fake.waitUntilExit()
        }
        let home = AgentHome(directory: a)
        var config = try home.config()
        let realURL = config.hubURL
        config.hubURL = "http://127.0.0.1:\(port)"
        try home.save(config)

        let (store, _) = try agentStore(a)
        let pendingBefore = try store.counts().pendingWrites + store.counts().inFlightWrites
        #expect(pendingBefore == 5 * 12)
        // Bounded retries while the fake server starts (until then: "cannot reach").
        var refused = false
        for _ in 0..<25 where !refused {
            let r = try await sb.run(["agent", "sync", "--dir", a])
            refused = r.status != 0 && r.text.contains("not a Ferry acknowledgement")
            if !refused { try await Task.sleep(nanoseconds: 200_000_000) }
        }
        #expect(refused, "the agent accepted an unsigned acknowledgement")
        let after = try store.counts()
        #expect(after.pendingWrites + after.inFlightWrites == pendingBefore)

        // Back on the real hub, the same queued writes arrive exactly once.
        config.hubURL = realURL
        try home.save(config)
        try await sb.ok(["agent", "sync", "--dir", a])
        #expect(try store.counts().pendingWrites + store.counts().inFlightWrites == 0)
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(hub.dir))
    }
}
