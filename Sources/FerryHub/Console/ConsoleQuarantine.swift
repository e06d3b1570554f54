import FerryCore
import FerryProtocol
import FerryStore
import Foundation
import HTTPTypes
import Hummingbird

/// The console's quarantine page with its two writes (issue 11 item 7): fix
/// (write a corrected value, parsed against the record's form) and release
/// (close without a write, with a reason). Both go through
/// ``HubService/operatorRequest(method:path:query:body:identity:)``, so they are
/// role-checked, call ``HubService/quarantineFix(id:value:note:by:)`` and
/// ``HubService/quarantineRelease(id:note:by:)`` like `ferry quarantine fix|release`,
/// and land in the operator log and the hub's log under the user's name.
enum ConsoleQuarantine {
    /// What the operator typed when a write was refused, shown again with the reason.
    struct Refusal {
        var id: Int64
        var action: String
        var value: String
        var note: String
        var reason: String
    }

    struct Row {
        var id: Int64
        var record, shortRecord, field, value, reason, origin, time, rules: String
        var canAct: Bool
        var csrf: String
        var fixValue, fixNote, releaseNote: String
        var fixError, releaseError: String?
    }
    struct View {
        var count: Int
        var shown: Int
        var more, canAct: Bool
        var role: String
        var done: String?
        /// A refusal about an entry no longer listed (another operator closed it).
        var problem: String?
        var entries: [Row]
    }

    static let pageSize = 500

    /// The rules of a field in words, so the operator types a value the form accepts.
    static func rules(_ f: FieldSpec?) -> String {
        guard let f else { return "" }
        var out: [String] = [f.type.rawValue]
        if f.required == true { out.append("required") }
        func n(_ d: Double) -> String { Int64(exactly: d).map(String.init) ?? Value.double(d).display }
        switch (f.min, f.max) {
        case (let lo?, let hi?): out.append("from \(n(lo)) to \(n(hi))")
        case (let lo?, nil): out.append("at least \(n(lo))")
        case (nil, let hi?): out.append("at most \(n(hi))")
        case (nil, nil): break
        }
        switch (f.minLength, f.maxLength) {
        case (let lo?, let hi?): out.append("\(lo)–\(hi) characters")
        case (let lo?, nil): out.append("at least \(lo) characters")
        case (nil, let hi?): out.append("at most \(hi) characters")
        case (nil, nil): break
        }
        if let d = f.digits { out.append("exactly \(d) digits") }
        if let lo = f.minDate { out.append("from \(lo)") }
        if let hi = f.maxDate { out.append("until \(hi)") }
        if let c = f.choices { out.append("one of: \(c.joined(separator: ", "))") }
        return out.joined(separator: " · ")
    }

    static func view(_ service: HubService, _ who: OperatorIdentity, refusal: Refusal?, done: String?) throws -> View {
        let list = try service.store.quarantine(limit: pageSize)
        let forms = try service.store.forms()
        let canAct = who.may(.operator)
        let csrf = who.session.flatMap(service.access.csrf(session:)) ?? ""
        let rows = try list.map { e -> Row in
            let scope = try RecordID(e.record).flatMap { try service.store.record($0) }?.scope
            let form = scope.flatMap { s in forms.first { $0.id == s.formID && $0.version == s.formVersion } }
            let mine = refusal?.id == e.id ? refusal : nil
            return Row(
                id: e.id, record: e.record, shortRecord: ConsoleViews.short(e.record), field: e.field,
                value: e.value.text, reason: e.reason, origin: ConsoleViews.short(e.origin),
                time: ConsoleViews.utc(e.timeMs), rules: rules(form?.fields.first { $0.name == e.field }),
                canAct: canAct, csrf: csrf, fixValue: mine?.action == "fix" ? mine?.value ?? "" : "",
                fixNote: mine?.action == "fix" ? mine?.note ?? "" : "",
                releaseNote: mine?.action == "release" ? mine?.note ?? "" : "",
                fixError: mine?.action == "fix" ? mine?.reason : nil,
                releaseError: mine?.action == "release" ? mine?.reason : nil)
        }
        let total = try service.store.totals()["quarantined"] ?? rows.count
        return View(
            count: total, shown: rows.count, more: total > rows.count, canAct: canAct, role: who.role.rawValue,
            done: done,
            problem: refusal.flatMap { r in list.contains { $0.id == r.id } ? nil : "Entry #\(r.id): \(r.reason)" },
            entries: rows)
    }

    static func render(
        _ service: HubService, _ context: HubRequestContext, refusal: Refusal? = nil, done: String? = nil,
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        guard let who = context.identity else { return Console.redirect("/login") }
        guard who.may(.viewer) else { return Console.html("forbidden", status: .forbidden) }
        let model = try view(service, who, refusal: refusal, done: done)
        let body = Console.library.render(model, withTemplate: "quarantine") ?? ""
        return Console.html(
            Console.wrap(
                title: "Quarantine", body: body, user: Console.userView(service, who, current: "quarantine"),
                flash: nil), status: status)
    }

    static func register(on pages: RouterGroup<HubRequestContext>, service: HubService) {
        pages.get("/quarantine") { request, context in
            let q = request.uri.queryParameters
            let done: String? =
                if let n = q["fixed"].flatMap({ Int64(String($0)) }) {
                    "Entry #\(n) is fixed: the corrected value is at the hub and goes to the commune at its next sync."
                } else if let n = q["released"].flatMap({ Int64(String($0)) }) {
                    "Entry #\(n) is released: closed without a write; the refused value stays recorded."
                } else { nil }
            return try render(service, context, done: done)
        }
        pages.post("/quarantine/fix") { request, context in try await close("fix", request, context, service) }
        pages.post("/quarantine/release") { request, context in
            try await close("release", request, context, service)
        }
    }

    static func close(_ action: String, _ request: Request, _ context: HubRequestContext, _ service: HubService)
        async throws -> Response
    {
        let form = try await Console.formFields(request)
        guard let who = context.identity, let s = who.session else { return Console.redirect("/login") }
        guard Console.checkCSRF(service, s, form) else {
            return try Console.message(
                service, context, .forbidden, "Form expired",
                "The form is stale: reload the quarantine page and retry.",
                back: "/quarantine")
        }
        let idText = form["id"] ?? ""
        guard let id = Int64(idText), id > 0 else {
            return try Console.message(
                service, context, .badRequest, "No such entry", "'\(idText)' is not a quarantine entry number.",
                back: "/quarantine")
        }
        let value = (form["value"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines).nfc
        let note = (form["note"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines).nfc
        func refused(_ why: String, _ status: HTTPResponse.Status) throws -> Response {
            try render(
                service, context, refusal: Refusal(id: id, action: action, value: value, note: note, reason: why),
                status: status)
        }
        // Checked here before the service, so the operator's text stays in the form.
        if action == "fix", value.isEmpty {
            return try refused("Type the corrected value first (see the rules under the field).", .unprocessableContent)
        }
        if action == "release", note.isEmpty {
            return try refused(
                "Say why you release it (for example “the commune enters it again”): the note is kept in the audit trail.",
                .unprocessableContent)
        }
        let body = try HubJSON.encoder.encode(
            QuarantineCloseRequest(value: action == "fix" ? value : nil, note: note.isEmpty ? nil : note))
        let r = await Task.detached {
            service.operatorRequest(
                method: "POST", path: ["quarantine", String(id), action], query: [:], body: [UInt8](body),
                identity: who)
        }.value
        guard r.status == 200 else {
            let why =
                (try? HubJSON.decoder.decode(ErrorBody.self, from: Data(r.body)))?.error.message ?? "HTTP \(r.status)"
            if r.status == 403 {
                return try Console.message(
                    service, context, .forbidden, "Not allowed", why, back: "/quarantine")
            }
            return try refused(why, HTTPResponse.Status(code: r.status))
        }
        return Console.redirect("/quarantine?\(action == "fix" ? "fixed" : "released")=\(id)")
    }
}
