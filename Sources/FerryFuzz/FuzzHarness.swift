import FerryCore
import FerryCrypto
import FerryProtocol
import FerryTesting
import Foundation

/// What one harness call did with its input, so tests can check that the
/// seeds reach the code they are meant to (past parsing, past the signature).
public enum FuzzOutcome: Sendable, Equatable, CustomStringConvertible {
    /// The input was accepted by the deepest step the harness drives.
    case accepted(String)
    /// The input was refused with a typed error (the code).
    case refused(String)
    /// The harness skipped the input on purpose (a known trap fixed elsewhere).
    case skipped(String)

    public var description: String {
        switch self {
        case .accepted(let s): "accepted(\(s))"
        case .refused(let s): "refused(\(s))"
        case .skipped(let s): "skipped(\(s))"
        }
    }

    public var isAccepted: Bool {
        if case .accepted = self { return true }
        return false
    }
}

/// The libFuzzer harnesses of Ferry's decoders (one `Fuzz*` executable each);
/// the normal test run replays seeds and crashers through the same functions.
/// Each call must return for any input: a trap is a bug in the code under test.
public enum FuzzHarness {
    /// The harness names, as the executables and seed directories are called.
    public static let targets = ["FuzzEnvelope", "FuzzBody", "FuzzForm", "FuzzRequest", "FuzzIngest"]

    /// Runs the harness called `target` on `bytes`.
    public static func run(_ target: String, _ bytes: [UInt8]) -> FuzzOutcome {
        switch target {
        case "FuzzEnvelope": envelope(bytes)
        case "FuzzBody": body(bytes)
        case "FuzzForm": form(bytes)
        case "FuzzRequest": request(bytes)
        case "FuzzIngest": IngestHarness.shared.run(bytes)
        default: .skipped("no harness \(target)")
        }
    }

    // MARK: (a) envelope opener

    static let parties: VectorFixtures.Parties? = try? VectorFixtures.Parties()
    static let vector: SealedChangeSet? = parties.flatMap { p in
        try? Envelope.seal(
            header: VectorFixtures.header(p, compression: .zstd), body: VectorFixtures.body, signer: p.agentSigning,
            key: p.agentSession.transmit, nonce: VectorFixtures.nonce)
    }

    /// Byte 0 chooses the mode. 0: the rest is an envelope from the network,
    /// opened as the hub of protocol/vectors opens one (peek, open, ReceiveChecks).
    /// 1: the rest is a header, sealed and signed with the vector's agent keys
    /// around the vector's body, so a hostile header reaches the checks that
    /// run after authentication.
    public static func envelope(_ bytes: [UInt8]) -> FuzzOutcome {
        guard let mode = bytes.first, let p = parties else { return .skipped("empty") }
        let rest = Array(bytes.dropFirst())
        let wire: [UInt8]
        if mode & 1 == 0 {
            wire = rest
            _ = try? Envelope.decodeHeader(rest)
        } else {
            guard let v = vector else { return .skipped("no vector") }
            wire = sealWithHeader(rest, compressed: v.compressedBody, parties: p)
        }
        _ = try? Envelope.peek(wire)
        // The hub opens without a limit it could not afford, so use the standard ones.
        do {
            _ = try VectorFixtures.receive(wire, parties: p)
            return .accepted("opened")
        } catch {
            return .refused(error.code.rawValue)
        }
    }

    /// An envelope around arbitrary header bytes, correctly sealed and signed.
    static func sealWithHeader(_ headerBytes: [UInt8], compressed: [UInt8], parties p: VectorFixtures.Parties)
        -> [UInt8]
    {
        let signature = p.agentSigning.sign(
            Envelope.signedMessage(headerBytes: headerBytes, compressedBody: compressed))
        let ad =
            Envelope.magic + [Envelope.envelopeVersion] + VectorFixtures.be32(UInt32(clamping: headerBytes.count))
            + headerBytes
        guard
            let ct = try? AEAD.seal(
                signature + compressed, associatedData: ad, nonce: VectorFixtures.nonce,
                key: p.agentSession.transmit)
        else { return [] }
        return ad + VectorFixtures.nonce + ct
    }

    // MARK: (b) body decoder

    /// The rest after byte 0 is a body as it comes out of decompression. Byte 0
    /// also picks a decompressor to run the same bytes through (bounded size).
    public static func body(_ bytes: [UInt8]) -> FuzzOutcome {
        guard let mode = bytes.first else { return .skipped("empty") }
        let rest = Array(bytes.dropFirst())
        let algorithm = Compression(rawValue: Int(mode % 3)) ?? .none
        let size = Int(mode >> 2) * 64
        _ = try? Compressor.decompress(rest, algorithm, size: size)
        _ = try? BodyCodec.decode(rest, normalize: false)
        do {
            let b = try BodyCodec.decode(rest, normalize: true)
            // What was decoded must encode again (the hub re-encodes what it serves).
            let again = try BodyCodec.decode(BodyCodec.encode(b), normalize: true)
            return .accepted("\(b.writes.count) writes, \(again.writes.count) after re-encoding")
        } catch {
            return .refused(error.code.rawValue)
        }
    }
}

// MARK: (c) form validator

extension FuzzHarness {
    /// The input is a form definition as JSON, a 0x00 byte, then a program of
    /// values: per value a field index, a type tag and its payload. Each value
    /// goes through `violation(field:value:)`, tag 7 first through `parse(field:text:)`.
    public static func form(_ bytes: [UInt8]) -> FuzzOutcome {
        let split = bytes.firstIndex(of: 0) ?? bytes.endIndex
        let json = Data(bytes[..<split])
        _ = try? JSONDecoder().decode(CampaignDefinition.self, from: json)
        _ = try? JSONDecoder().decode(Commune.self, from: json)
        guard let form = try? JSONDecoder().decode(FormDefinition.self, from: json) else {
            return .refused("form json")
        }
        _ = form.problems()
        var reader = ByteReader(bytes[min(split + 1, bytes.endIndex)...])
        let names = form.fields.map(\.name) + [deletedField, "no-such-field"]
        var values: [String: Value] = [:]
        var checked = 0
        while checked < 64, let pick = reader.byte(), let tag = reader.byte() {
            let field = names[Int(pick) % names.count]
            var value: Value
            switch tag % 8 {
            case 0: value = .null
            case 1: value = .bool((reader.byte() ?? 0) & 1 == 1)
            case 2: value = .int(Int64(bitPattern: reader.u64()))
            case 3: value = .double(Double(bitPattern: reader.u64()))
            case 4: value = .string(String(decoding: reader.bytes(Int(reader.u16() % 4200)), as: UTF8.self))
            case 5: value = .date(Int32(bitPattern: UInt32(truncatingIfNeeded: reader.u64())))
            case 6: value = .bytes(reader.bytes(Int(reader.u16() % 4200)))
            default:
                let text = String(decoding: reader.bytes(Int(reader.byte() ?? 0)), as: UTF8.self)
                guard let parsed = try? form.parse(field: field, text: text) else { continue }
                value = parsed
            }
            _ = form.violation(field: field, value: value)
            values[field] = value
            checked += 1
        }
        _ = form.missingRequired(in: values)
        return .accepted("\(checked) values")
    }

}

/// Reads a fuzzer's bytes as a little program; short reads give zeros.
struct ByteReader {
    var bytes: ArraySlice<UInt8>
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    mutating func byte() -> UInt8? { bytes.popFirst() }
    mutating func u16() -> UInt16 { UInt16(byte() ?? 0) | UInt16(byte() ?? 0) << 8 }
    mutating func u64() -> UInt64 {
        var x: UInt64 = 0
        for k in 0..<8 { x |= UInt64(byte() ?? 0) << (8 * UInt64(k)) }
        return x
    }
    mutating func bytes(_ n: Int) -> [UInt8] {
        let out = Array(bytes.prefix(n))
        bytes = bytes.dropFirst(n)
        return out
    }
}

// MARK: (d) HTTP parameter parsing

extension FuzzHarness {
    /// Byte 0 even: the rest is the body of `POST /v1/enroll`. Odd: the rest is
    /// text, its first line a raw query string (`since=…&max_bytes=…`), each
    /// further line a header `Name: value`, as `GET /v1/changes` receives them.
    public static func request(_ bytes: [UInt8]) -> FuzzOutcome {
        guard let mode = bytes.first else { return .skipped("empty") }
        let rest = Array(bytes.dropFirst())
        if mode & 1 == 0 {
            do {
                let r = try EnrollRequest.parse(rest)
                return .accepted("enroll \(r.token.commune)")
            } catch {
                return .refused(error.code.rawValue)
            }
        }
        let lines = String(decoding: rest, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        for pair in (lines.first ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = String(kv[0]).removingPercentEncoding ?? String(kv[0])
            let v = kv.count > 1 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""
            if query[k] == nil { query[k] = v }
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if headers[name] == nil { headers[name] = value }
        }
        do {
            let p = try PullRequestV1.parse(query: query, headers: headers)
            // What the hub verifies the signature over.
            let message = PullAuth.message(
                agent: p.agentID, since: p.since, maxBytes: p.maxBytes ?? 256 * 1024, timeMs: p.timeMs)
            return .accepted("pull, \(message.count)-byte signed message")
        } catch {
            return .refused(error.code.rawValue)
        }
    }
}

// MARK: running without libFuzzer

extension FuzzHarness {
    /// The `main` of a fuzz executable built without `--sanitize=fuzzer`
    /// (a plain `swift build`): runs each file named on the command line
    /// through the harness and prints the outcome, like libFuzzer's replay mode.
    public static func standalone(_ target: String) -> Int32 {
        let files = CommandLine.arguments.dropFirst()
        guard !files.isEmpty else {
            print(
                "\(target): built without libFuzzer. Run scripts/fuzz.sh \(target) SECONDS to fuzz, "
                    + "or pass input files to replay them here.")
            return 2
        }
        for f in files {
            guard let data = FileManager.default.contents(atPath: f) else {
                print("\(f): cannot read")
                return 1
            }
            print("\(f): \(run(target, [UInt8](data)))")
        }
        return 0
    }
}
