import FerryCrypto
import FerryProtocol
import Foundation
import Testing

/// SPEC §9.13: the commune's conflict list opens only for the agent and the
/// request it answers, and an answer outside the bounds is refused.
struct CommuneConflictsTests {
    static let agent = "a-24781-0011aabb"
    static let commune = "24781"
    static let time: UInt64 = 1_764_000_000_000
    let hubKX = KXKeyPair()
    let agentKX = KXKeyPair()

    func conflict(_ n: Int, commune: String = commune, sides: Int = 2) -> ConflictReport {
        ConflictReport(
            record: String(format: "0190c3a2-7b4e-7c1d-8f00-%012d", n), field: "status", kind: "concurrent_writes",
            commune: commune, detectedMs: Self.time,
            sides: (0..<sides).map {
                .init(
                    write: "0000000000000001@hub", origin: $0 == 0 ? "hub" : Self.agent, timeMs: Self.time,
                    field: "status", value: .string("giá trị \($0)"), valueType: "text")
            })
    }

    func sealed(_ a: CommuneConflictsV1, agent: String = agent, time: UInt64 = time) throws -> [UInt8] {
        try ConflictsAuth.seal(
            a, agent: agent, timeMs: time, key: try hubKX.serverSessionKeys(client: agentKX.publicKey).transmit)
    }

    func open(_ bytes: [UInt8], time: UInt64 = time) throws(ConflictsAuth.OpenError) -> CommuneConflictsV1 {
        let key = try! agentKX.clientSessionKeys(server: hubKX.publicKey).receive
        return try ConflictsAuth.open(bytes, agent: Self.agent, commune: Self.commune, timeMs: time, key: key)
    }

    func refusal(_ bytes: [UInt8]) -> ConflictsAuth.OpenError? {
        do throws(ConflictsAuth.OpenError) {
            _ = try open(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test func anAnswerOpensForItsAgentAndRequestWithItsValues() throws {
        let a = CommuneConflictsV1(commune: Self.commune, open: 3, conflicts: [conflict(1), conflict(2)], hubTimeMs: 7)
        let got = try open(try sealed(a))
        #expect(got == a)
        #expect(got.conflicts[0].sides[0].value == .string("giá trị 0"))
    }

    @Test func anAnswerToAnotherRequestAnotherAgentOrAlteredDoesNotOpen() throws {
        let a = CommuneConflictsV1(commune: Self.commune, open: 1, conflicts: [conflict(1)], hubTimeMs: 7)
        let bytes = try sealed(a)
        // A replay of the answer to an older request.
        #expect(throws: ConflictsAuth.OpenError.notSealedForThisRequest) { try open(bytes, time: Self.time + 1) }
        // Sealed for another agent's request (same keys, other name in the associated data).
        #expect(throws: ConflictsAuth.OpenError.notSealedForThisRequest) {
            try open(try sealed(a, agent: "a-24781-ffffffff"))
        }
        // Sealed with another hub's key.
        let other = try ConflictsAuth.seal(
            a, agent: Self.agent, timeMs: Self.time,
            key: try KXKeyPair().serverSessionKeys(client: agentKX.publicKey).transmit)
        #expect(throws: ConflictsAuth.OpenError.notSealedForThisRequest) { try open(other) }
        // Any flipped byte, any truncation.
        for i in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 40)) {
            var b = bytes
            b[i] ^= 0x40
            #expect(throws: ConflictsAuth.OpenError.notSealedForThisRequest) { try open(b) }
            #expect(throws: ConflictsAuth.OpenError.notSealedForThisRequest) { try open(Array(bytes.prefix(i))) }
        }
    }

    @Test func anAnswerOutsideTheBoundsIsRefusedAndSaysWhy() throws {
        // Another commune's list, even sealed correctly.
        let elsewhere = CommuneConflictsV1(commune: "99999", open: 0, conflicts: [], hubTimeMs: 7)
        #expect(throws: ConflictsAuth.OpenError.self) { try open(try sealed(elsewhere)) }
        // More listed than open, more than 50 listed, a conflict of another commune, too many sides.
        let cases = [
            CommuneConflictsV1(commune: Self.commune, open: 0, conflicts: [conflict(1)], hubTimeMs: 7),
            CommuneConflictsV1(
                commune: Self.commune, open: 51, conflicts: (0..<51).map { conflict($0) }, hubTimeMs: 7),
            CommuneConflictsV1(
                commune: Self.commune, open: 1, conflicts: [conflict(1, commune: "99999")], hubTimeMs: 7),
            CommuneConflictsV1(commune: Self.commune, open: 1, conflicts: [conflict(1, sides: 9)], hubTimeMs: 7),
        ]
        for c in cases {
            let bytes = try sealed(c)
            guard case .malformed(let why) = refusal(bytes) else {
                Issue.record("not refused as malformed: \(c.open) open, \(c.conflicts.count) listed")
                continue
            }
            #expect(!why.isEmpty)
        }
        // Larger than the bound: refused before any decryption.
        let huge = [UInt8](repeating: 0, count: CommuneConflictsV1.maxPlaintextBytes + 100)
        #expect(throws: ConflictsAuth.OpenError.tooLarge(huge.count)) { try open(huge) }
        // Not JSON of the right shape.
        let key = try hubKX.serverSessionKeys(client: agentKX.publicKey).transmit
        let nonce = randomBytes(AEAD.nonceBytes)
        let junk =
            nonce
            + (try AEAD.seal(
                Array("{\"open\": -1}".utf8),
                associatedData: ConflictsAuth.message(agent: Self.agent, timeMs: Self.time),
                nonce: nonce, key: key))
        guard case .malformed = refusal(junk) else {
            Issue.record("junk not refused as malformed")
            return
        }
    }
}
