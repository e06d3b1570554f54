/// The console's Mustache templates (swift-mustache), kept in Swift so the
/// binary carries them. `{{x}}` is HTML-escaped; `{{{x}}}` only for HTML the
/// hub rendered itself. Numbers the page tests check carry `data-*` attributes.
enum ConsoleTemplates {
    static let all: [String: String] = [
        "layout": layout, "login": login, "progress": progress, "fleet": fleet, "conflicts": conflicts,
        "quarantine": quarantine, "records": records, "record": record, "message": message,
    ]

    static let layout = """
        <!doctype html>
        <html lang="vi">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Ferry hub</title>
        <style>
        body{font-family:"Noto Sans","DejaVu Sans",sans-serif;margin:0;font-size:14px;color:#1d2433;background:#f5f6f8}
        header{display:flex;align-items:center;gap:18px;background:#1f3a5f;color:#fff;padding:8px 16px}
        header a{color:#dfe8f5;text-decoration:none;padding:4px 8px;border-radius:4px}
        header a.current{background:#fff;color:#1f3a5f;font-weight:600}
        header .who{margin-left:auto;display:flex;gap:8px;align-items:center}
        main{padding:12px 16px;max-width:1330px}
        h1{font-size:20px;margin:4px 0 10px} h2{font-size:16px;margin:14px 0 6px}
        table{border-collapse:collapse;background:#fff;width:100%}
        th,td{border-bottom:1px solid #e1e4ea;padding:5px 8px;text-align:left;vertical-align:top}
        th{background:#eef1f5;font-weight:600} td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
        .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(124px,1fr));gap:4px}
        .tile{border-radius:4px;padding:4px 6px;font-size:12px;line-height:1.3;color:#111;min-height:40px}
        .tile b{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-weight:600}
        .s0{background:#f4c7c3}.s1{background:#f9dcb0}.s2{background:#fcefa6}.s3{background:#d5eba6}.s4{background:#a8dba8}
        .s5{background:#5fbf77;color:#fff}
        .legend span{display:inline-block;padding:2px 8px;margin-right:4px;border-radius:3px;font-size:12px}
        .bar{height:14px;background:#e1e4ea;border-radius:3px;overflow:hidden;width:260px;display:inline-block;vertical-align:middle}
        .bar i{display:block;height:100%;background:#2e8b57}
        .warn{color:#a33}.ok{color:#2e7d32}.muted{color:#667}
        form.inline{display:inline} button{font:inherit;padding:3px 8px;cursor:pointer}
        .box{background:#fff;padding:16px;border-radius:6px;max-width:380px;margin:60px auto}
        .box input{display:block;width:100%;box-sizing:border-box;margin:4px 0 12px;padding:6px;font:inherit}
        .flash{background:#fff3cd;border:1px solid #e0c97a;padding:6px 10px;margin-bottom:10px}
        td.actions form{margin:0 0 6px} td.actions input{font:inherit;padding:2px 4px}
        .rules{font-size:12px} .refusal{font-weight:600} .flash.warn{background:#fbe3e1;border-color:#d99}
        </style>
        </head>
        <body>
        {{#user}}
        <header>
        <strong>Ferry hub</strong>
        <nav>{{#nav}}<a href="{{href}}"{{#current}} class="current"{{/current}}>{{label}}</a> {{/nav}}</nav>
        <span class="who">{{name}} ({{role}})
        <form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="{{csrf}}"><button>Log out</button></form>
        </span>
        </header>
        {{/user}}
        <main>
        {{#flash}}<div class="flash">{{flash}}</div>{{/flash}}
        {{{body}}}
        </main>
        </body>
        </html>
        """

    static let login = """
        <div class="box">
        <h1>Ferry hub · Đăng nhập / Log in</h1>
        {{#error}}<p class="warn">{{error}}</p>{{/error}}
        <form method="post" action="/login">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label>User name<input name="user" autocomplete="username" value="{{user}}"></label>
        <label>Password<input name="password" type="password" autocomplete="current-password"></label>
        <button>Log in</button>
        </form>
        </div>
        """

    static let progress = """
        <h1>Campaign progress</h1>
        <p class="legend">Share of the target done:
        <span class="s0">0 %</span><span class="s1">&lt; 25 %</span><span class="s2">&lt; 50 %</span>
        <span class="s3">&lt; 75 %</span><span class="s4">&lt; 100 %</span><span class="s5">done</span></p>
        {{#campaigns}}
        <section class="campaign" data-campaign="{{id}}" data-done="{{done}}" data-target="{{target}}">
        <h2>{{title}} <span class="muted">({{id}}, form {{form}}, {{starts}} → {{ends}}, {{status}})</span></h2>
        <p><span class="bar"><i style="width:{{percentWidth}}%"></i></span>
        <strong>{{done}} / {{target}}</strong> records ({{percent}} %) · {{communesDone}} of {{communeCount}} communes done
        · {{records}} records in all</p>
        <div class="grid">
        {{#rows}}<div class="tile s{{shade}}" data-commune="{{commune}}" data-records="{{records}}" data-target="{{target}}" title="{{name}} ({{commune}}): {{records}} / {{target}}"><b>{{name}}</b>{{records}} / {{target}} · {{percent}} %</div>
        {{/rows}}
        </div>
        </section>
        {{/campaigns}}
        {{^campaigns}}<p>No campaign is published.</p>{{/campaigns}}
        """

    static let fleet = """
        <h1>Agent fleet</h1>
        <p><span data-agents="{{count}}">{{count}}</span> agents · {{active}} active · {{revoked}} revoked ·
        {{stale}} silent for over a day · hub time {{now}}</p>
        <table>
        <tr><th>Commune</th><th>Agent</th><th>Host</th><th>Status</th><th>Last contact</th><th class="num">Lag</th>
        <th class="num">Clock skew</th><th>Version</th><th>Errors</th></tr>
        {{#agents}}<tr class="agent" data-agent="{{id}}" data-lag="{{lag}}" data-commune="{{commune}}">
        <td>{{communeName}} <span class="muted">{{commune}}</span></td><td><code>{{shortID}}</code></td><td>{{hostname}}</td>
        <td class="{{statusClass}}">{{status}}</td><td>{{lastContact}}<br><span class="muted">{{lastContactAt}}</span></td>
        <td class="num">{{lag}}</td><td class="num">{{skew}}</td><td>{{version}}</td>
        <td class="warn">{{lastError}}{{#cloned}} · cloned replica refused {{cloned}}×{{/cloned}}</td></tr>
        {{/agents}}
        </table>
        """

    static let conflicts = """
        <h1>Conflict queue</h1>
        <p><span data-conflicts="{{count}}">{{count}}</span> open conflicts{{#more}} (showing the oldest {{shown}}){{/more}}.
        {{^canResolve}}<span class="muted">Your role ({{role}}) may only read; an operator resolves.</span>{{/canResolve}}</p>
        <table>
        <tr><th>Record</th><th>Commune</th><th>Field</th><th>Kind</th><th>Sides</th></tr>
        {{#conflicts}}<tr class="conflict" data-record="{{record}}" data-field="{{field}}">
        <td><a href="/records/{{record}}"><code>{{shortRecord}}</code></a></td><td>{{communeName}}</td><td>{{field}}</td><td>{{kind}}</td>
        <td>{{#sides}}<div>{{value}} <span class="muted">— {{who}}, {{time}}</span>
        {{#canResolve}}<form class="inline" method="post" action="/conflicts/resolve">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="record" value="{{record}}">
        <input type="hidden" name="field" value="{{field}}"><input type="hidden" name="value" value="{{keep}}">
        <button>{{button}}</button></form>{{/canResolve}}</div>{{/sides}}</td></tr>
        {{/conflicts}}
        </table>
        """

    static let quarantine = """
        <h1>Quarantine</h1>
        {{#done}}<div class="flash done">{{done}}</div>{{/done}}
        {{#problem}}<div class="flash warn">{{problem}}</div>{{/problem}}
        <p><span data-quarantine="{{count}}">{{count}}</span> open entries: values the hub refused and kept aside{{#more}} (showing the oldest {{shown}}){{/more}}.
        {{#canAct}}Fix writes the corrected value to the record (it reaches the commune at its next sync); release closes the entry without a write.{{/canAct}}
        {{^canAct}}<span class="muted">Your role ({{role}}) may only read; an operator fixes or releases.</span>{{/canAct}}</p>
        <table>
        <tr><th>#</th><th>Record</th><th>Field</th><th>Refused value</th><th>Reason</th><th>From</th><th>When</th>{{#canAct}}<th>Close it</th>{{/canAct}}</tr>
        {{#entries}}<tr class="quarantined" data-id="{{id}}"><td>{{id}}</td><td><a href="/records/{{record}}"><code>{{shortRecord}}</code></a></td>
        <td>{{field}}</td><td>{{value}}</td><td>{{reason}}</td><td>{{origin}}</td><td>{{time}}</td>
        {{#canAct}}<td class="actions">
        <form class="fix" method="post" action="/quarantine/fix">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}">
        <label>Corrected value <input name="value" value="{{fixValue}}" required size="14"></label>
        <input name="note" value="{{fixNote}}" placeholder="note (optional)" size="14">
        <button>Fix</button>
        {{#rules}}<div class="muted rules">{{field}}: {{rules}}</div>{{/rules}}
        {{#fixError}}<div class="warn refusal">Not fixed: {{fixError}}</div>{{/fixError}}
        </form>
        <form class="release" method="post" action="/quarantine/release">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}">
        <input name="note" value="{{releaseNote}}" placeholder="why (required)" required size="24">
        <button>Release</button>
        {{#releaseError}}<div class="warn refusal">Not released: {{releaseError}}</div>{{/releaseError}}
        </form></td>{{/canAct}}</tr>
        {{/entries}}
        </table>
        """

    static let records = """
        <h1>Records</h1>
        <form method="get" action="/records">
        <input name="q" value="{{q}}" placeholder="name, id number, record id…" size="40">
        <select name="commune"><option value="">every commune</option>
        {{#communes}}<option value="{{code}}"{{#selected}} selected{{/selected}}>{{name}} ({{code}})</option>{{/communes}}
        </select>
        <button>Search</button></form>
        <p><span data-results="{{count}}">{{count}}</span> records{{#more}} (the first {{count}}; narrow the search){{/more}}.</p>
        <table>
        <tr><th>Record</th><th>Commune</th><th>Form</th><th>Summary</th><th>State</th></tr>
        {{#results}}<tr class="record" data-record="{{id}}"><td><a href="/records/{{id}}"><code>{{shortID}}</code></a></td>
        <td>{{communeName}}</td><td>{{form}} v{{version}}</td><td>{{summary}}</td>
        <td>{{#deleted}}deleted{{/deleted}}{{#conflict}} <span class="warn">conflict</span>{{/conflict}}</td></tr>
        {{/results}}
        </table>
        """

    static let record = """
        <h1>Record <code>{{id}}</code></h1>
        <p>{{communeName}} ({{commune}}) · form {{form}} v{{version}}{{#deleted}} · <span class="warn">deleted</span>{{/deleted}}</p>
        <table>
        <tr><th>Field</th><th>Value</th><th>Written by</th><th>State</th></tr>
        {{#fields}}<tr data-field="{{name}}"><td>{{name}}</td><td>{{value}}</td><td>{{origin}}</td>
        <td>{{#conflict}}<span class="warn">conflict: {{leaves}}</span>{{/conflict}}</td></tr>
        {{/fields}}
        </table>
        <h2>Operator actions</h2>
        <table><tr><th>When</th><th>User</th><th>Action</th><th>Detail</th></tr>
        {{#actions}}<tr class="action"><td>{{time}}</td><td>{{user}}</td><td>{{action}}</td><td>{{detail}}</td></tr>{{/actions}}
        </table>
        <h2>Signed change sets</h2>
        <table><tr><th>Change set</th><th>From</th><th>Sequence</th><th>Received</th><th>Signature</th></tr>
        {{#audit}}<tr><td><code>{{changeSet}}</code></td><td>{{origin}}</td><td>{{seq}}</td><td>{{time}}</td><td>{{valid}}</td></tr>{{/audit}}
        </table>
        """

    static let message = """
        <h1>{{heading}}</h1>
        <p>{{text}}</p>
        <p><a href="{{back}}">Back</a></p>
        """
}
