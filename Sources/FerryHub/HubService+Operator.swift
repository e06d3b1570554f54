import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

extension HubService {
    /// Routes an authenticated operator request.
    /// - Parameter by: the acting operator's name, kept with every write in
    ///   the audit trail (the shared operator token acts as `admin`).
    public func operatorRequest(
        method: String, path: [String], query: [String: String], body: [UInt8], by: String = "admin"
    ) -> HubReply {
        do {
            // Only documented routes are served (protocol/openapi.json, HubRoutes).
            guard HubRoutes.isOperatorRoute(method: method, path: path) else {
                return .error(
                    404, code: "not_found",
                    "no operator endpoint \(method) /v1/ops/\(path.joined(separator: "/")) (see /v1/openapi.json)")
            }
            if let r = try lifecycleRoute(method: method, path: path, query: query, body: body, by: by) { return r }
            func route(_ m: String, _ pattern: String) -> [String]? {
                guard m == method else { return nil }
                let pp = pattern.split(separator: "/").map(String.init)
                guard pp.count == path.count else { return nil }
                var captured: [String] = []
                for (a, b) in zip(pp, path) {
                    if a == "*" { captured.append(b) } else if a != b { return nil }
                }
                return captured
            }
            switch () {
            case _ where route("GET", "status") != nil:
                return .json(200, try status())
            case _ where route("GET", "agents") != nil:
                return .json(200, try agentsPage(query))
            case _ where route("POST", "agents/*/revoke") != nil:
                let cap = route("POST", "agents/*/revoke") ?? []
                let id = cap[0]
                try store.revoke(agent: id)
                logger.notice("agent revoked", metadata: ["ferry.agent": "\(id)"])
                return .json(200, ["revoked": id])
            case _ where route("POST", "tokens") != nil:
                let req = try decode(TokenRequest.self, body)
                let ttl = UInt64(max(1, min(req.ttlHours ?? 168, 24 * 90))) * 3_600_000
                let secret = try store.issueToken(commune: req.commune, ttlMillis: ttl)
                let token = EnrollmentToken(commune: req.commune, secret: secret, hubFingerprint: identity.fingerprint)
                return .json(
                    200,
                    TokenResponse(token: token.description, commune: req.commune, expiresMs: store.nowMillis() + ttl))
            case _ where route("GET", "conflicts") != nil:
                return .json(200, try conflictsPage(query))
            case _ where route("POST", "conflicts/resolve") != nil:
                let req = try decode(ResolveRequest.self, body)
                guard let rid = RecordID(req.record) else {
                    throw HubError(.badRequest, "'\(req.record)' is not a record id")
                }
                try requireConflict(record: rid, field: req.field.nfc)
                let value = try req.value.map { try parse(record: rid, field: req.field, text: $0) }
                try store.resolve(record: rid, field: req.field.nfc, value: value)
                return .json(200, try recordJSON(rid))
            case _ where route("GET", "quarantine") != nil:
                return .json(200, try quarantinePage(query))
            case _ where route("GET", "forms") != nil:
                return .json(200, try store.forms())
            case _ where route("GET", "communes") != nil:
                return .json(200, try store.communes())
            case _ where route("GET", "records") != nil:
                return .json(200, try recordsPage(query))
            case _ where route("POST", "records") != nil:
                let req = try decode(RecordWriteRequest.self, body)
                guard let formID = req.form, let commune = req.commune else {
                    throw HubError(.badRequest, "a new record needs form and commune")
                }
                guard
                    let form = try store.forms().filter({
                        $0.id == formID && (req.version == nil || $0.version == req.version)
                    })
                    .max(by: { $0.version < $1.version })
                else { throw HubError(.notFound, "form \(formID) is not published") }
                var values: [String: Value] = [:]
                for (k, v) in req.values { values[k.nfc] = try form.parse(field: k.nfc, text: v) }
                let id = try store.operatorCreate(form: form, commune: commune, values: values)
                return .json(200, try recordJSON(id))
            case _ where route("GET", "records/*") != nil:
                let cap = route("GET", "records/*") ?? []
                let id = cap[0]
                guard let rid = RecordID(id) else { throw HubError(.badRequest, "'\(id)' is not a record id") }
                return .json(200, try recordJSON(rid))
            case _ where route("POST", "records/*") != nil:
                let cap = route("POST", "records/*") ?? []
                let id = cap[0]
                guard let rid = RecordID(id) else { throw HubError(.badRequest, "'\(id)' is not a record id") }
                let req = try decode(RecordWriteRequest.self, body)
                var values: [String: Value] = [:]
                for (k, v) in req.values { values[k.nfc] = try parse(record: rid, field: k.nfc, text: v) }
                // An operator's edit names every leaf it saw (SPEC §8.2), so a plain
                // edit of a conflicted field closes the conflict; `resolve: false` keeps it.
                try store.operatorWrite(record: rid, values: values, resolve: req.resolve ?? true)
                return .json(200, try recordJSON(rid))
            case _ where route("GET", "audit/*") != nil:
                let cap = route("GET", "audit/*") ?? []
                let id = cap[0]
                return .json(200, try auditPage(id, query))
            case _ where route("GET", "winners") != nil:
                guard let commune = query["commune"] else { throw HubError(.badRequest, "winners needs ?commune=CODE") }
                let w = try store.winners(commune: commune)
                var out: [String: [String: String]] = [:]
                for (r, fields) in w { out[r.description] = fields.mapValues { "\($0.typeName):\($0.display)" } }
                return .json(200, out)
            default:
                return .error(
                    404, code: "not_found", "no operator endpoint \(method) /v1/ops/\(path.joined(separator: "/"))")
            }
        } catch let e as HubError {
            return .error(
                e.httpStatus, code: e.code.rawValue, e.message, problems: e.problems.isEmpty ? nil : e.problems)
        } catch let e as FormError {
            return .error(422, code: "invalid_value", e.message)
        } catch {
            if let f = storeFault(error) { return .error(f.httpStatus, code: f.code.rawValue, f.message) }
            // Not a refusal of the request: say so, rather than blame the operator's input.
            logger.error("operator request failed", metadata: ["ferry.problem": "\(error)"])
            return .error(
                500, code: "internal",
                "the hub failed on this request and did not apply it (\(error)); retry, and if it lasts send the hub's log to its administrator"
            )
        }
    }

    func decode<T: Decodable>(_ t: T.Type, _ body: [UInt8], snake: Bool = true) throws -> T {
        do {
            return try (snake ? HubJSON.decoder : JSONDecoder()).decode(T.self, from: Data(body))
        } catch {
            throw HubError(.badRequest, "the request body is not the expected JSON (\(T.self)): \(error)")
        }
    }

    func parse(record: RecordID, field: String, text: String) throws -> Value {
        guard let view = try store.record(record) else {
            throw HubError(.notFound, "record \(record) is not at this hub")
        }
        guard
            let form = try store.forms().first(where: {
                $0.id == view.scope.formID && $0.version == view.scope.formVersion
            })
        else { throw HubError(.notFound, "form \(view.scope.formID) v\(view.scope.formVersion) is not published") }
        return try form.parse(field: field, text: text)
    }

    func recordJSON(_ id: RecordID) throws -> HubRecordJSON {
        guard let v = try store.record(id) else { throw HubError(.notFound, "record \(id) is not at this hub") }
        var fields: [String: HubRecordJSON.FieldJSON] = [:]
        for (f, reg) in v.leaves {
            guard let w = reg.winner else { continue }
            fields[f] = .init(
                value: JSONValue(w.value), type: w.value.typeName, write: w.id.description, conflict: reg.isConflict,
                leaves: reg.leaves.map { "\($0.id)=\($0.value.display)" })
        }
        return HubRecordJSON(
            id: id.description, form: v.scope.formID, formVersion: v.scope.formVersion, commune: v.scope.commune,
            deleted: v.isDeleted, fields: fields)
    }

    func status() throws -> HubStatusJSON {
        let names = Dictionary(try store.communes().map { ($0.code, $0.name) }, uniquingKeysWith: { a, _ in a })
        let agents = try store.agents().map { agentJSON($0, names: names) }
        let now = store.nowMillis()
        return HubStatusJSON(
            version: FerryVersion.string, timeMs: now, totals: try store.totals(), agents: agents,
            attention: try attention(agents: agents, now: now))
    }
}
