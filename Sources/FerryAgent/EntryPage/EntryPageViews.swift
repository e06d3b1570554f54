import FerryCore
import FerryStore
import Foundation
import Mustache

/// The entry page's HTML, rendered on the server with swift-mustache (the hub
/// console's stack): no script, UTF-8 declared in the head (PLATFORM.md: without
/// it Vietnamese turns to mojibake), every value HTML-escaped by `{{ }}`.
struct EntryPageViews: Sendable {
    let library: MustacheLibrary

    init() throws {
        var l = MustacheLibrary()
        try l.register(Self.layout, named: "layout")
        try l.register(Self.home, named: "home")
        try l.register(Self.record, named: "record")
        try l.register(Self.message, named: "message")
        library = l
    }

    /// Renders `name` into the layout.
    func page(_ name: String, title: String, commune: String, _ context: [String: Any]) -> String {
        let content = library.render(context, withTemplate: name) ?? ""
        let layout: [String: Any] = ["title": title, "commune": commune, "content": content]
        return library.render(layout, withTemplate: "layout") ?? content
    }

    /// The sync state box, from the same ``AgentStatus`` as `ferry status`.
    static func syncContext(_ s: AgentStatus, now: UInt64) -> [String: Any] {
        let pending = s.pendingWrites + s.inFlightWrites
        let headline: String
        let cls: String
        if s.inSync {
            headline = "ĐÃ ĐỒNG BỘ / IN SYNC: mọi thay đổi đã đến máy chủ tỉnh / every change has reached the hub"
            cls = "ok"
        } else if pending > 0 {
            headline =
                "CHƯA ĐỒNG BỘ / NOT IN SYNC: \(pending) thay đổi đang chờ gửi / change(s) waiting to be sent"
            cls = "wait"
        } else if !s.localCopyComplete {
            headline =
                "CHƯA ĐỒNG BỘ / NOT IN SYNC: đang tải về \(s.changesBehind ?? 0) thay đổi / still downloading \(s.changesBehind ?? 0) change(s)"
            cls = "wait"
        } else {
            headline = "CHƯA XÁC NHẬN / NOT CONFIRMED: chưa đồng bộ xong / the last sync did not finish"
            cls = "wait"
        }
        var c: [String: Any] = [
            "headline": headline, "cls": s.exitCode == 2 ? "bad" : cls,
            "pending": String(pending),
            "lastContact": AgentStatus.ago(s.lastContactMs, now: now),
            "lastUpload": AgentStatus.ago(s.lastUploadAckMs, now: now),
            "records": String(s.records),
            "quarantined": s.quarantined.map { q in
                ["record": q.record, "field": q.field, "value": q.value, "reason": q.reason] as [String: Any]
            },
            "hasQuarantined": !s.quarantined.isEmpty,
        ]
        if let n = s.hubConflictsOpen {
            c["provinceConflicts"] = String(n)
            c["hasProvinceConflicts"] = true
        }
        if let n = s.communeConflictsOpen {
            c["conflicts"] = String(n)
            c["hasConflicts"] = true
            c["conflictsChecked"] = AgentStatus.ago(s.communeConflictsCheckedMs, now: now)
            c["conflictList"] = s.communeConflicts.map { conflictContext($0, agent: s.agentId) }
            c["conflictsListed"] = !s.communeConflicts.isEmpty
            if n > s.communeConflicts.count { c["conflictsMore"] = String(n - s.communeConflicts.count) }
        }
        if let p = s.problem { c["problem"] = p }
        if let a = s.advice { c["advice"] = a }
        return c
    }

    /// One conflict in plain words: what happened, and each competing value with who wrote it.
    static func conflictContext(_ k: LocalConflict, agent: String) -> [String: Any] {
        let what =
            k.kind == "edit_vs_delete"
            ? "sửa hồ sơ đã bị xoá / edited while deleted elsewhere"
            : "hai giá trị ghi cùng lúc / two values written at once"
        let sides = k.sides.map { side -> [String: Any] in
            let who =
                side.origin == agent
                ? "máy này / this PC" : side.origin == "hub" ? "cán bộ tỉnh / hub operator" : "máy \(side.origin)"
            let value =
                side.field == "_deleted" ? (side.value == "true" ? "xoá / delete" : "khôi phục / undelete") : side.value
            return ["value": value, "who": who]
        }
        return [
            "record": k.record, "short": String(k.record.prefix(13)), "field": k.field, "what": what, "sides": sides,
        ]
    }

    static let layout = """
        <!doctype html>
        <html lang="vi">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Ferry</title>
        <style>
        body { font-family: "Noto Sans", "DejaVu Sans", sans-serif; margin: 0; color: #1b1b1b; background: #f6f6f3; }
        header { background: #1d4e89; color: #fff; padding: 10px 20px; }
        header a { color: #fff; } header h1 { margin: 0; font-size: 20px; }
        main { padding: 12px 20px; max-width: 1100px; }
        .sync { border-radius: 6px; padding: 10px 14px; margin: 10px 0; border: 2px solid; background: #fff; }
        .sync.ok { border-color: #2e7d32; } .sync.wait { border-color: #b26a00; } .sync.bad { border-color: #b00020; }
        .headline { font-weight: bold; font-size: 17px; }
        table { border-collapse: collapse; background: #fff; width: 100%; }
        td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; font-size: 14px; }
        label { display: block; font-weight: bold; margin-top: 10px; }
        .rules { color: #555; font-size: 13px; } .err { color: #b00020; font-weight: bold; font-size: 14px; }
        .saved { background: #e3f2e5; border: 1px solid #2e7d32; padding: 8px; }
        .problem { background: #fdecea; border: 1px solid #b00020; padding: 8px; }
        input, select { font-size: 15px; padding: 3px; min-width: 320px; }
        button { font-size: 16px; padding: 6px 18px; margin-top: 14px; }
        </style>
        </head>
        <body>
        <header><h1>Ferry · {{commune}}</h1><a href="/">Trang chính / Home</a></header>
        <main>
        {{{content}}}
        </main>
        </body>
        </html>

        """

    static let syncBox = """
        {{#sync}}
        <section class="sync {{cls}}" id="sync">
        <div class="headline">{{headline}}</div>
        <div>Chờ gửi / Pending: <b id="pending">{{pending}}</b> ·
        Lần cuối liên lạc máy chủ / Hub last reached: <b>{{lastContact}}</b> ·
        Gửi được lần cuối / Last upload acknowledged: {{lastUpload}} · Hồ sơ / Records: {{records}}</div>
        {{#hasConflicts}}<div>Xung đột trên hồ sơ của xã (cán bộ tỉnh chọn giá trị, ở đây không cần làm gì) / Open conflicts on this commune's records (the hub operator chooses the value; nothing to do here): <b id="conflicts">{{conflicts}}</b> <span class="rules">(kiểm tra / checked {{conflictsChecked}})</span></div>
        {{#conflictsListed}}<table id="conflict-list"><tr><th>Hồ sơ / Record</th><th>Trường / Field</th><th>Chuyện gì / What happened</th><th>Các giá trị / Competing values</th></tr>
        {{#conflictList}}<tr><td><a href="/records/{{record}}">{{short}}</a></td><td>{{field}}</td><td>{{what}}</td><td>{{#sides}}“{{value}}” ({{who}})<br>{{/sides}}</td></tr>{{/conflictList}}
        </table>{{#conflictsMore}}<div class="rules">… và / and {{conflictsMore}} nữa / more</div>{{/conflictsMore}}{{/conflictsListed}}{{/hasConflicts}}
        {{^hasConflicts}}{{#hasProvinceConflicts}}<div>Xung đột đang mở (toàn tỉnh) / Open conflicts (whole province): {{provinceConflicts}}</div>{{/hasProvinceConflicts}}{{/hasConflicts}}
        {{#problem}}<div class="problem">Vấn đề / Problem: {{problem}}{{#advice}}<br>Cần làm / What to do: {{advice}}{{/advice}}</div>{{/problem}}
        {{#hasQuarantined}}
        <div><b>Giá trị bị máy chủ từ chối / Values the hub refused (quarantined):</b></div>
        <table id="quarantine"><tr><th>Hồ sơ / Record</th><th>Trường / Field</th><th>Giá trị / Value</th><th>Lý do / Reason</th></tr>
        {{#quarantined}}<tr><td><a href="/records/{{record}}">{{record}}</a></td><td>{{field}}</td><td>{{value}}</td><td>{{reason}}</td></tr>{{/quarantined}}
        </table>
        {{/hasQuarantined}}
        </section>
        {{/sync}}
        """

    static let home =
        syncBox + """
            <h2>Nhập hồ sơ mới / New record</h2>
            <ul>
            {{#forms}}<li><a href="/new?form={{id}}">{{title}}</a> ({{id}} v{{version}}, {{fieldCount}} trường / fields)</li>{{/forms}}
            {{^forms}}<li>Chưa có biểu mẫu: máy chưa đồng bộ với máy chủ tỉnh / No forms yet: this PC has not synced with the hub.</li>{{/forms}}
            </ul>
            <h2>Hồ sơ của xã / This commune's records (<span id="count">{{count}}</span>)</h2>
            <p class="rules" id="page">Hiển thị / Showing {{from}}–{{to}} của / of {{count}}, mới nhất trước / newest first.
            {{#paged}}<a href="/">Mới nhất / Newest</a>{{/paged}}
            {{#older}}<a id="older" href="{{href}}">Cũ hơn / Older ({{count}} nữa / more) →</a>{{/older}}</p>
            <table id="records">
            <tr><th>Mã / Id</th><th>Biểu mẫu / Form</th>{{#columns}}<th>{{.}}</th>{{/columns}}<th></th></tr>
            {{#records}}<tr><td><a href="/records/{{id}}">{{short}}</a></td><td>{{form}}</td>{{#cells}}<td>{{.}}</td>{{/cells}}<td>{{#deleted}}đã xoá / deleted{{/deleted}}</td></tr>{{/records}}
            </table>
            """

    static let record =
        syncBox + """
            <h2>{{heading}}</h2>
            {{#saved}}<p class="saved" id="saved">Đã lưu vào máy này; sẽ gửi lên máy chủ tỉnh khi có mạng. / Saved on this PC; it is sent to the hub when the link is up. Mã hồ sơ / Record id: <b>{{id}}</b></p>{{/saved}}
            {{#failed}}<p class="problem" id="notsaved">Chưa lưu: hãy sửa các trường đánh dấu đỏ; những gì đã nhập vẫn giữ nguyên. / Not saved: fix the fields marked in red; what you typed is kept.{{#general}}<br>{{general}}{{/general}}</p>{{/failed}}
            <form method="post" action="{{action}}">
            <input type="hidden" name="_csrf" value="{{csrf}}">
            <input type="hidden" name="_form" value="{{formId}}">
            {{#fields}}
            <label for="f.{{name}}">{{label}}{{#required}} *{{/required}}</label>
            {{#isSelect}}<select id="f.{{name}}" name="f.{{name}}">{{#options}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{text}}</option>{{/options}}</select>{{/isSelect}}
            {{^isSelect}}<input id="f.{{name}}" name="f.{{name}}" type="{{inputType}}" value="{{value}}"{{#attrs}} {{k}}="{{v}}"{{/attrs}}>{{/isSelect}}
            <div class="rules">{{rules}}</div>
            {{#error}}<div class="err" id="err.{{name}}">{{error}}</div>{{/error}}
            {{#refused}}<div class="err refused" id="refused.{{name}}">{{refused}}</div>{{/refused}}
            {{#conflict}}<div class="err conflict" id="conflict.{{name}}">{{conflict}}</div>{{/conflict}}
            {{/fields}}
            <button type="submit">Lưu / Save</button>
            </form>
            """

    static let message = """
        <p class="problem">{{message}}</p>
        <p><a href="/">Về trang chính / Back to the home page</a></p>
        """
}
