import Foundation

/// JSON messages of the sync exchange over HTTP (SPEC §9).
/// The JSON error body every refusal uses.
public struct ErrorBody: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var code: String
        public var message: String
        public var expectedSeq: UInt64?
        public var changeSet: String?
        public init(code: String, message: String, expectedSeq: UInt64? = nil, changeSet: String? = nil) {
            self.code = code
            self.message = message
            self.expectedSeq = expectedSeq
            self.changeSet = changeSet
        }
    }
    public var error: Detail
    public init(error: Detail) { self.error = error }
}

/// JSON coding shared by the hub and its clients: snake_case keys.
public enum HubJSON {
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        return e
    }
    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}

/// Enrollment request and answer (SPEC §9).
public struct EnrollRequest: Codable, Sendable {
    public var token: String
    public var signPublicKey: String
    public var kxPublicKey: String
    public var hostname: String
    public init(token: String, signPublicKey: String, kxPublicKey: String, hostname: String) {
        self.token = token
        self.signPublicKey = signPublicKey
        self.kxPublicKey = kxPublicKey
        self.hostname = hostname
    }
}

public struct EnrollResponse: Codable, Sendable {
    public var agentId: String
    public var commune: String
    public var hubSignPublicKey: String
    public var hubKxPublicKey: String
    public var hubTimeMs: UInt64
    public init(agentId: String, commune: String, hubSignPublicKey: String, hubKxPublicKey: String, hubTimeMs: UInt64) {
        self.agentId = agentId
        self.commune = commune
        self.hubSignPublicKey = hubSignPublicKey
        self.hubKxPublicKey = hubKxPublicKey
        self.hubTimeMs = hubTimeMs
    }
}
