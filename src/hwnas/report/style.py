"""The report's stylesheet: one column of cards, tables that fit any width (secondary columns
fold away on tablets, rows stack into cards on phones), nothing wider than the viewport."""

CSS = """
:root{--bg:#f4f5f7;--card:#fff;--text:#1f2430;--muted:#667085;--faint:#98a2b3;
--border:#e4e7ec;--accent:#4f46e5;--accent-soft:#eef2ff;--knee:#b54708;--knee-soft:#fffaeb;
--ok:#027a48;--warn-soft:#f0f9ff;--warn-border:#b9e6fe;--mono:ui-monospace,SFMono-Regular,
"SF Mono",Menlo,Consolas,"Liberation Mono",monospace}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1320px;margin:0 auto;padding:28px 24px 56px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code,.mono{font-family:var(--mono);font-size:12.5px}
h1{font-size:22px;line-height:1.3;margin:0 0 6px;font-weight:650;overflow-wrap:anywhere}
h2{font-size:15px;margin:0 0 4px;font-weight:650}
.sub{color:var(--muted);margin:0;overflow-wrap:anywhere}
.sub span+span::before{content:"·";margin:0 8px;color:var(--faint)}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;
margin:20px 0 4px}
.kpi{background:var(--card);border:1px solid var(--border);border-radius:10px;padding:12px 16px;
min-width:0}
.kpi .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi .v{font-size:20px;font-weight:650;margin-top:2px;overflow-wrap:anywhere}
.kpi .n{color:var(--muted);font-size:12.5px;overflow-wrap:anywhere}
.card{background:var(--card);border:1px solid var(--border);border-radius:12px;
padding:18px 20px;margin:16px 0;min-width:0;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.card>.caption,.caption{color:var(--muted);font-size:12.5px;margin:8px 0 0}
.card>.lead{color:var(--muted);font-size:13px;margin:0 0 12px}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px}
.grid2>.card{margin:0}
.wrap2{margin:16px 0}
.note{background:var(--warn-soft);border:1px solid var(--warn-border);border-radius:10px;
padding:10px 14px;margin:16px 0;font-size:13px}
.plot{width:100%;min-width:0}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:7px 8px;border-bottom:1px solid var(--border);text-align:right;
vertical-align:top}
thead th{font-size:12px;font-weight:600;color:var(--muted);vertical-align:bottom;
border-bottom:1px solid #d0d5dd;overflow-wrap:anywhere}
th .u,th .d{display:block;font-weight:400;color:var(--faint)}
th .d{font-size:11px}
tbody tr:hover{background:#fafbfc}
tr.knee{background:var(--knee-soft)}tr.knee:hover{background:#fff4d6}
th.label,td.label{text-align:left;min-width:9em}
td.num .v{white-space:nowrap}
td .iqr{display:block;color:var(--faint);font-size:11.5px}
td .val{display:block;color:var(--faint);font-size:11.5px}
td.files{white-space:normal}
td.files a{white-space:nowrap}
.badges{display:flex;flex-wrap:wrap;gap:4px;margin-top:4px}
.badge{display:inline-block;border-radius:999px;padding:0 8px;font-size:11px;line-height:18px;
font-weight:600;background:var(--accent-soft);color:var(--accent);white-space:nowrap}
.badge.knee{background:#fef0c7;color:var(--knee)}
.name{font-weight:600;overflow-wrap:anywhere}
.export{display:inline-flex;align-items:center;gap:6px;margin-right:8px;white-space:nowrap}
.links{font-size:11.5px}
dl.mini{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:1px 12px;
margin:6px 0 4px;font-size:12px}
dl.mini dt{color:var(--muted)}dl.mini dd{margin:0;font-variant-numeric:tabular-nums}
details.key summary{cursor:pointer;color:var(--muted);font-size:12px;list-style:none}
details.key summary::-webkit-details-marker{display:none}
details.key summary::before{content:"▸ ";color:var(--faint)}
details.key[open] summary::before{content:"▾ "}
details.key .k{font-family:var(--mono);font-size:11.5px;color:var(--muted);
overflow-wrap:anywhere;word-break:break-all;margin-top:4px;max-width:42em}
details.key dl{margin:6px 0 0;font-size:12px}
dl.kv{display:grid;grid-template-columns:minmax(7em,max-content) minmax(0,1fr);gap:6px 18px;
margin:0}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;min-width:0;overflow-wrap:anywhere}
dl.kv dl.kv{gap:2px 12px}
.times{display:grid;grid-template-columns:max-content minmax(0,1fr) max-content;gap:4px 10px;
align-items:center;max-width:560px}
.times .bar{height:8px;border-radius:4px;background:var(--accent);opacity:.75;min-width:2px}
.times .t{font-variant-numeric:tabular-nums;text-align:right}
.prov h3{font-size:13px;margin:18px 0 8px;color:var(--text)}
.prov h3:first-child{margin-top:6px}
details.settings summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word;margin:12px 0 0;
background:#f9fafb;border:1px solid var(--border);border-radius:8px;padding:12px 14px;
font:12px/1.5 var(--mono);max-width:100%}
footer{color:var(--faint);font-size:12px;margin-top:28px;text-align:center}
@media (max-width:1100px){.sec,table.stack td.sec,table.stack th.sec{display:none}}
@media (max-width:900px){.grid2{grid-template-columns:minmax(0,1fr)}.grid2>.card+.card{
margin-top:16px}}
@media (max-width:720px){
main{padding:16px 12px 40px}
h1{font-size:19px}
.card{padding:14px 14px;border-radius:10px}
.kpis{grid-template-columns:repeat(2,minmax(0,1fr));gap:8px}
.kpi{padding:10px 12px}.kpi .v{font-size:17px}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
table.stack thead{display:none}
table.stack tr{border:1px solid var(--border);border-radius:10px;margin:0 0 10px;
padding:8px 12px}
table.stack td{display:flex;justify-content:space-between;align-items:baseline;gap:12px;
border:0;padding:3px 0;text-align:right}
table.stack td::before{content:attr(data-label);color:var(--muted);text-align:left;
font-size:12.5px;flex:0 1 auto;min-width:0;overflow-wrap:break-word}
table.stack td>.v{min-width:0;overflow-wrap:anywhere}
table.stack td.num .v{white-space:normal}
table.stack td .m,table.stack td .iqr,table.stack td .val{white-space:nowrap}
table.stack td .val{display:block;margin-left:0}
table.stack td.files{display:block;text-align:left}
table.stack td.files::before{display:block}
table.stack td.files .val{display:block}
table.stack td .iqr{display:inline;margin-left:6px}
table.stack td.label{display:block;text-align:left;padding-bottom:6px;
border-bottom:1px solid var(--border);margin-bottom:4px}
table.stack td.label::before{content:none}
table.stack td.files{justify-content:space-between}
dl.kv{grid-template-columns:minmax(0,1fr);gap:0}
dl.kv dt{margin-top:8px}
dl.kv dl.kv dt{margin-top:4px}
.times{grid-template-columns:max-content minmax(0,1fr) max-content}
}
"""
