"""Jinja2 templates of the static site, kept in Python so they ship with the package.

Autoescape is on for every template (``render.environment``): names from configs and file names
are text, never markup. Nothing is loaded from the network: CSS, JS and the favicon are inline.
"""

CSS = """
:root{--fg:#1b1f24;--bg:#fff;--muted:#57606a;--line:#d8dee4;--soft:#f6f8fa;--link:#0b5cad;--lit:#fbf7ea;
--best:#e8f5e9;--flag:#fdecea;--flagfg:#8a1c12;--badge:#e9d9a6;--badgefg:#4a3b00;--tip:#1b1f24;--tipfg:#fff;--mw:11rem}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9da7b3;--line:#30363d;--soft:#161b22;
--link:#6cb6ff;--lit:#221d0f;--best:#12261a;--flag:#3a1512;--flagfg:#ffb4a8;--badge:#5a4a12;--badgefg:#f5e6b3;
--tip:#e6edf3;--tipfg:#0d1117}}
*{box-sizing:border-box}
html{color-scheme:light dark}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:var(--fg);background:var(--bg)}
main{max-width:1360px;margin:0 auto;padding:12px}
h1{font-size:1.4rem;margin:.4em 0}h2{font-size:1.15rem;margin:1.4em 0 .4em}h3{font-size:1rem;margin:1em 0 .3em}
a{color:var(--link)}
.answer{font-size:1.02rem;background:var(--soft);border-left:4px solid #2f855a;padding:6px 10px;margin:.4em 0;overflow-wrap:anywhere}
.scroll{overflow:auto;max-width:100%;max-height:78vh;border:1px solid var(--line);border-radius:6px;-webkit-overflow-scrolling:touch}
table{border-collapse:separate;border-spacing:0;font-variant-numeric:tabular-nums;width:100%}
caption{text-align:left;font-size:.85rem;color:var(--muted);padding:4px 8px;caption-side:top}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap;vertical-align:top;background:var(--bg)}
td.num,th.num{text-align:right}
thead th{background:var(--soft);position:sticky;top:0;z-index:2}
table.board .c-model{position:sticky;left:0;z-index:1;width:var(--mw);min-width:var(--mw);max-width:var(--mw);white-space:normal;overflow-wrap:anywhere;font-weight:600}
table.board .c-primary{position:sticky;left:var(--mw);z-index:1;box-shadow:2px 0 0 var(--line)}
table.board thead .c-model,table.board thead .c-primary{z-index:3}
table.board td.c-primary{font-weight:600}
th .sort{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer;color:inherit;text-align:inherit}
th .sort:focus-visible{outline:2px solid var(--link);outline-offset:2px}
th[aria-sort=ascending] .sort::after{content:" \\25B2"}th[aria-sort=descending] .sort::after{content:" \\25BC"}
th .tip{display:none;position:absolute;left:0;top:100%;z-index:9;width:19rem;white-space:normal;font-weight:400;
font-size:.8rem;line-height:1.35;background:var(--tip);color:var(--tipfg);padding:6px 8px;border-radius:6px;text-align:left}
th:hover .tip,th:focus-within .tip{display:block}
tr.best td,tr.best th{background:var(--best)}
tr.flagged td,tr.flagged th{background:var(--flag)}
.flag{color:var(--flagfg);font-weight:700}
.badge{display:inline-block;font-size:.72rem;padding:0 6px;border-radius:9px;background:var(--badge);color:var(--badgefg);margin-left:4px}
.runs a{font-weight:400;font-size:.85rem;margin-right:3px}
.notes{color:var(--muted);font-size:.9rem;max-width:100%;overflow-wrap:anywhere}
.notes code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em;overflow-wrap:anywhere}
.warn{background:var(--flag);color:var(--flagfg);padding:6px 10px;border-radius:6px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px}
figure img{max-width:100%;height:auto;display:block;background:#fff}
figcaption{font-size:.8rem;color:var(--muted);overflow-wrap:anywhere}
.cbar{display:flex;align-items:center;gap:6px;font-size:.8rem;color:var(--muted);flex-wrap:wrap}
.cbar span.bar{display:inline-block;width:180px;height:12px;border:1px solid var(--line);
background:linear-gradient(90deg,#00007f,#0000ff,#007fff,#00ffff,#7fff7f,#ffff00,#ff7f00,#ff0000,#7f0000)}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:.9rem}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--soft);padding:8px;border-radius:6px}
.toolbar{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:.5em 0}
input[type=search],select{font:inherit;padding:3px 6px;max-width:100%;color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:4px}
details.compare{margin:.6em 0}details.compare summary{cursor:pointer}
footer{margin-top:2em;border-top:1px solid var(--line);padding-top:.5em}
img.plot{max-width:100%;height:auto;background:#fff}
@media (max-width:600px){main{padding:8px}body{font-size:14px}:root{--mw:8.4rem}th,td{padding:3px 5px}}
"""

FAVICON = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' "
           "height='16' rx='3' fill='%232f855a'/%3E%3Cpath d='M3 12h2V7H3zm4 0h2V4H7zm4 0h2V9h-2z' fill='%23fff'/%3E%3C/svg%3E")

JS = """
(function(){
  function key(td,type){var v=td.getAttribute('data-v');if(v===null)v=td.textContent.trim();
    if(type==='num'){var f=parseFloat(v);return isNaN(f)?null:f;}return v===''?null:v.toLowerCase();}
  document.querySelectorAll('table.sortable').forEach(function(tbl){
    var ths=tbl.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths,function(th,col){
      var b=th.querySelector('button.sort');if(!b)return;
      b.addEventListener('click',function(){
        var type=th.getAttribute('data-type')||'text';
        var dir=th.getAttribute('aria-sort')==='descending'?'ascending':
                (th.getAttribute('aria-sort')==='ascending'?'descending':(type==='num'?'descending':'ascending'));
        Array.prototype.forEach.call(ths,function(o){o.setAttribute('aria-sort','none');});
        th.setAttribute('aria-sort',dir);
        var body=tbl.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        var keyed=rows.map(function(r,i){return {r:r,i:i,k:key(r.cells[col],type)};});
        var s=dir==='ascending'?1:-1;
        keyed.sort(function(a,b){
          if(a.k===null&&b.k===null)return a.i-b.i;if(a.k===null)return 1;if(b.k===null)return -1;
          if(a.k<b.k)return -s;if(a.k>b.k)return s;return a.i-b.i;});
        keyed.forEach(function(x){body.appendChild(x.r);});
      });
    });
  });
  var f=document.getElementById('filter');
  if(f){f.addEventListener('input',function(){
    var q=f.value.trim().toLowerCase();var shown=0;
    document.querySelectorAll('table.sortable tbody tr').forEach(function(r){
      var hit=!q||r.textContent.toLowerCase().indexOf(q)>=0;r.hidden=!hit;if(hit)shown++;});
    var c=document.getElementById('filter-count');if(c)c.textContent=q?(shown+' row(s) match'):'';
  });}
  function fp(p){if(p===null||p===undefined||isNaN(p))return '\\u2014';return p<1e-4?'< 0.0001':p.toFixed(4);}
  document.querySelectorAll('details.compare').forEach(function(d){
    var data=JSON.parse(document.getElementById(d.getAttribute('data-json')).textContent);
    var a=d.querySelector('select.a'),b=d.querySelector('select.b'),out=d.querySelector('.cmp-out');
    function show(){
      var i=+a.value,j=+b.value,ra=data.rows[i],rb=data.rows[j];
      var t=document.createElement('table');var cap=t.createCaption();cap.textContent='Side by side: '+ra.model+' and '+rb.model;
      var h=t.createTHead().insertRow();['','A: '+ra.model,'B: '+rb.model].forEach(function(x){var c=document.createElement('th');c.scope='col';c.textContent=x;h.appendChild(c);});
      var body=t.createTBody();
      function row(label,x,y){var r=body.insertRow();var c=document.createElement('th');c.scope='row';c.textContent=label;r.appendChild(c);
        [x,y].forEach(function(v){var td=r.insertCell();td.className='num';td.textContent=v;});}
      row('Protocol',ra.protocol,rb.protocol);
      data.metrics.forEach(function(m,k){row(m,ra.vals[k],rb.vals[k]);});
      var msg;
      if(i===j){msg='Choose two different rows.';}
      else{var p=data.pairs[Math.min(i,j)+'|'+Math.max(i,j)];
        if(!p){msg='Paired test not computed (more rows than the compare view tests).';}
        else if(!p.comparable){msg='Paired test: not comparable ('+(p.reason||'')+').';}
        else{msg='Paired tests on the same '+p.n+' test items (runs '+p.runs.join(' vs ')+'): '+
          (p.delong?'DeLong (ROC-AUC) p = '+fp(p.delong.p)+'; ':'')+'McNemar (accuracy) p = '+fp(p.mcnemar.p)+
          '. Unadjusted: a single chosen comparison.';}}
      out.innerHTML='';out.appendChild(t);var para=document.createElement('p');para.className='notes';para.textContent=msg;out.appendChild(para);
    }
    a.addEventListener('change',show);b.addEventListener('change',show);show();
  });
})();
"""

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %}</title>
<link rel="icon" href="{{ favicon }}">
<style>{{ css }}</style></head>
<body><main>
{% block body %}{% endblock %}
<footer class="notes">
<p>Data credit: {{ credit }} {{ mura_note }}</p>
<p>Rendered by fracture-bench {{ version }} (bench-leaderboard) from the results store.
Results produced at harness commit(s): {% if commits %}{% for c in commits %}<span class="mono">{{ c }}</span>{% if not loop.last %}, {% endif %}{% endfor %}{% else %}not recorded{% endif %}.</p>
</footer>
</main>
{% block script %}{% endblock %}
</body></html>
"""

HEADER = """{% macro header(t, c, i) -%}
<th scope="col" data-type="{{ c.type }}" aria-sort="none" data-col="{{ c.key }}" class="c-{{ c.key }}{% if c.type == 'num' %} num{% endif %}">
<button type="button" class="sort" aria-describedby="def-{{ t.slug }}-{{ c.key }}">{{ c.label }}</button>
<span class="tip" role="tooltip" id="def-{{ t.slug }}-{{ c.key }}">{{ c.definition }}</span></th>
{%- endmacro %}"""

TASK_SECTION = """{% macro section(t, up, docs_href) -%}
<section id="task-{{ t.slug }}">
<h2>{{ t.task }}{% if t.generated %} &mdash; generated data, not a result{% endif %}
<small class="notes">({{ t.kind }}{% if t.study_level %}, study level{% endif %}; {{ t.primary_label }}; {{ t.test_name }}, Holm)</small></h2>
<p class="answer"><strong>Answer:</strong> {{ t.answer }}.</p>
<div class="scroll"><table class="sortable board" id="table-{{ t.slug }}">
<caption>{{ t.task }}{% if t.generated %} (generated data){% endif %}: our runs, one row per model and protocol, over its seeds</caption>
<thead><tr>{% for c in t.columns %}{{ header(t, c, loop.index0) }}{% endfor %}</tr></thead>
<tbody>
{% for r in t.rows %}<tr class="{{ r.cls }}" data-model="{{ r.model }}">{% for c in r.cells %}{% if c.key == 'model' %}<th scope="row" class="c-model"><a href="{{ up }}{{ c.href }}">{{ c.text }}</a>{% if c.flag %} <span class="flag" title="flagged: {{ c.flag }}">&#9873;</span>{% endif %}<br><span class="runs">{% for l in c.links %}<a href="{{ up }}{{ l.href }}" aria-label="run page of {{ r.model }} seed {{ l.text[1:] }}">{{ l.text }}</a>{% endfor %}</span></th>{% else %}<td class="c-{{ c.key }}{% if c.num %} num{% endif %}"{% if c.v is not none %} data-v="{{ c.v }}"{% endif %}{% if c.title %} title="{{ c.title }}"{% endif %}>{{ c.text }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody></table></div>
<p class="notes">Hover or focus (Tab) a column header for its definition; all of them are on the
<a href="{{ up }}definitions.html">definitions page</a>{% if docs_href %} and in <a href="{{ up }}{{ docs_href }}">docs/leaderboards.md</a>{% endif %}.
{% if t.test_name == 'McNemar' %}The paired test is McNemar's: it tests accuracy (per-image correctness), not {{ t.primary_label }}.{% else %}The paired test is DeLong's: it tests ROC-AUC on the same test images.{% endif %}
p-values are Holm-adjusted over the rows compared with the best; p &lt; 0.0001 prints as &ldquo;&lt; 0.0001&rdquo;; &mdash; = undefined.</p>
{% if t.notes %}<ul class="notes">{% for n in t.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
<p class="notes"><a href="{{ up }}{{ t.report }}">Reporting checklist page</a> (CLAIM / TRIPOD+AI / STARD items a harness can fill) &middot;
<a href="{{ up }}{{ t.slug }}.md">{{ t.slug }}.md</a> &middot; <a href="{{ up }}{{ t.slug }}.csv">{{ t.slug }}.csv</a></p>
{% if t.compare.rows|length > 1 %}<details class="compare" data-json="cmp-{{ t.slug }}"><summary>Compare two models</summary>
<div class="toolbar"><label>A <select class="a">{% for r in t.compare.rows %}<option value="{{ loop.index0 }}"{% if loop.index0 == 0 %} selected{% endif %}>{{ r.model }} ({{ r.protocol }})</option>{% endfor %}</select></label>
<label>B <select class="b">{% for r in t.compare.rows %}<option value="{{ loop.index0 }}"{% if loop.index0 == 1 %} selected{% endif %}>{{ r.model }} ({{ r.protocol }})</option>{% endfor %}</select></label></div>
<div class="cmp-out"></div></details>
<script type="application/json" id="cmp-{{ t.slug }}">{{ t.compare|tojson }}</script>{% endif %}
{% if t.cost_plot %}<h3>Score against cost</h3><a href="{{ up }}{{ t.cost_plot }}"><img class="plot" src="{{ up }}{{ t.cost_plot }}" width="900" height="360" loading="lazy"
alt="{{ t.task }}: {{ t.primary_label }} (mean over seeds) against GMACs and against training images per second, one point per row, Pareto front marked"></a>{% endif %}
{% if t.lit_rows %}<h3 id="lit-{{ t.slug }}">Reported elsewhere &mdash; not ranked, other protocols</h3>
<ul class="notes">{% for l in t.literature %}<li>{{ l }}</li>{% endfor %}</ul>
<div class="scroll"><table class="sortable lit" id="lit-table-{{ t.slug }}">
<caption>{{ t.task }}: published numbers under the papers' protocols (a separate table: never sorted into ours).</caption>
<thead><tr><th scope="col" data-type="text" aria-sort="none"><button type="button" class="sort">Model</button></th><th scope="col" data-type="text" aria-sort="none"><button type="button" class="sort">Source</button></th>
{% for c in t.lit_columns %}<th scope="col" class="num" data-type="num" aria-sort="none"><button type="button" class="sort">{{ c }}</button></th>{% endfor %}<th scope="col">Note</th></tr></thead>
<tbody>{% for r in t.lit_rows %}<tr class="lit" data-model="{{ r.model }}"><th scope="row">{{ r.model }}</th><td title="{{ r.citation }}"><span class="badge">{{ r.source }}</span></td>
{% for v in r.vals %}<td class="num"{% if v.v is not none %} data-v="{{ v.v }}"{% endif %}>{{ v.text }}</td>{% endfor %}<td>{{ r.note }}</td></tr>{% endfor %}</tbody></table></div>{% endif %}
</section>
{%- endmacro %}"""

INDEX = """{% extends "base.html" %}{% from "header.html" import header with context %}{% from "section.html" import section with context %}
{% block title %}Fracture benchmark leaderboard{% endblock %}
{% block body %}
<h1>Fracture X-ray classification leaderboard</h1>
<p class="notes">{{ n_runs }} stored runs, {{ tables|length }} task table(s). Each task opens with its answer; rows are one model and
protocol over its seeds (&#9733; best, &asymp; not significantly different, &darr; worse, &#9873; flagged: never ranked).
<a href="definitions.html">Definitions</a>{% if detection %} &middot; <a href="detection.html">Fracture detection (YOLOv8)</a>: {{ detection }}{% endif %}{% if n_skipped %} &middot; {{ n_skipped }} run folder(s) skipped (<a href="report.md">report.md</a>){% endif %}.</p>
<div class="toolbar"><label for="filter">Filter rows</label> <input type="search" id="filter" placeholder="model, protocol, flag..."> <span id="filter-count" class="notes" aria-live="polite"></span></div>
{% for t in tables %}{{ section(t, up, docs_href) }}{% endfor %}
{% if generated %}<h2 id="generated">Generated data (tests and quickstart)</h2>
<p class="warn">These runs are on generated images: they test the harness and are not results.</p>
{% for t in generated %}{{ section(t, up, docs_href) }}{% endfor %}{% endif %}
<p class="notes">Files: <a href="runs.csv">runs.csv</a> (every run, with its own CIs) &middot; <a href="report.md">report.md</a> &middot; <a href="README.md">README.md</a></p>
{% endblock %}
{% block script %}<script>{{ js }}</script>{% endblock %}
"""

RUN = """{% extends "base.html" %}
{% block title %}{{ r.run_id }}{% endblock %}
{% block body %}
<p><a href="{{ up }}index.html#task-{{ task_slug }}">&larr; leaderboard</a> &middot; <a href="{{ up }}definitions.html">definitions</a></p>
<h1 class="mono">{{ r.run_id }}</h1>
{% if flags %}<p class="warn">&#9873; Flagged: {{ flags }} &mdash; a degenerate run; its row is never ranked or best.</p>{% endif %}
{% if generated %}<p class="warn">Generated data: this run tests the harness and is not a result.</p>{% endif %}
<dl class="kv">
<dt>task</dt><dd>{{ r.task }} ({{ r.task_kind }}{% if r.study_level %}, study level{% endif %})</dd>
<dt>model</dt><dd>{{ r.model }}{% if r.model_family %} ({{ r.model_family }}){% endif %}, {% if r.pretrained %}ImageNet-pretrained{% else %}trained from scratch{% endif %}</dd>
<dt>seed</dt><dd>{{ r.seed }}</dd>
<dt>protocol</dt><dd class="mono">{{ protocol }}</dd>
<dt>split</dt><dd class="mono">{{ r.split_method }} sha256 {{ r.split_sha256 }} &middot; train {{ counts.train }} / val {{ counts.val }} / test {{ counts.test }}</dd>
<dt>best epoch</dt><dd>{{ best_epoch }}</dd>
<dt>cost</dt><dd>{{ cost or "—" }}</dd>
<dt>created</dt><dd>{{ r.created_at }}{% if r.sweep_id %} &middot; sweep {{ r.sweep_id }}{% endif %}{% if r.tags %} &middot; tags {{ r.tags }}{% endif %}</dd>
<dt>code</dt><dd class="mono">harness {{ run_version or "version not recorded" }}, commit {{ run_commit or "not recorded" }}</dd>
<dt>stored</dt><dd class="mono">{{ r.path }}</dd>
</dl>
<h2>Metrics</h2>
<div class="scroll"><table>
<caption>Metrics of this run per split (threshold 0.5 / argmax), with the bootstrap 95% CI of the {{ r.task }} test set.</caption>
<thead><tr><th scope="col">split</th>{% for m in metric_names %}<th scope="col" class="num" title="{{ metric_defs[loop.index0] }}">{{ m }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in metric_rows %}<tr><th scope="row">{{ row.split }}</th>{% for v in row.vals %}<td class="num">{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table></div>
<p class="notes">{{ ci_note }} — = undefined (e.g. precision with no positive prediction).</p>
{% if cms %}<h2>Confusion matrix</h2>{% for cm in cms %}<div class="scroll"><table>
<caption>{{ cm.split }} set: rows true class, columns predicted class (counts).</caption>
<thead><tr><th scope="col">true \\ predicted</th>{% for c in classes %}<th scope="col" class="num">{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in cm.rows %}<tr><th scope="row">{{ row.name }}</th>{% for v in row.vals %}<td class="num">{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody></table></div>{% endfor %}{% endif %}
{% if loc %}<h2>Localisation (final CAM layer)</h2>
<p class="notes">CAM target class: {{ target_text }}. Layers explained: {{ layers|join(", ") if layers else "not recorded" }}; scores are of the final one.
{{ n_explained }} test image(s) explained; those with fracture boxes are scored against them (n per method). Chance baseline: a uniform heatmap
scores the boxes' share of the image area on energy, and a random point lands in the boxes (grown by the pointing margin) as often
as their share of the area: the pointing game's chance; IoU has no uniform-map baseline.{% if not chance %} This run's
explanation predates recording that area, so it is shown as —.{% endif %}</p>
<div class="scroll"><table>
<caption>Final-layer localisation scores per CAM method, with the number of images scored (n) and degenerate (flat) maps.</caption>
<thead><tr><th scope="col">method</th><th scope="col">layer</th><th scope="col" class="num">n</th><th scope="col" class="num">pointing game</th><th scope="col" class="num">energy</th><th scope="col" class="num">IoU</th><th scope="col" class="num">chance baseline</th><th scope="col" class="num">degenerate maps</th></tr></thead>
<tbody>{% for l in loc %}<tr><th scope="row">{{ l.method }}</th><td class="mono">{{ l.layer }}</td><td class="num">{{ l.n }}</td><td class="num">{{ l.pointing_game }}</td><td class="num">{{ l.energy }}</td><td class="num">{{ l.iou }}</td><td class="num">{{ chance or "—" }}</td><td class="num">{% if l.degenerate not in ("0", "—") %}<span class="flag">&#9873; {{ l.degenerate }}</span>{% else %}{{ l.degenerate }}{% endif %}{% if l.skipped %} (skipped: {{ l.skipped }}){% endif %}</td></tr>{% endfor %}</tbody></table></div>{% endif %}
{% if plots %}<h2>Plots</h2><div class="grid">{% for p in plots %}<figure><a href="{{ p.src }}"><img src="{{ p.src }}" alt="{{ p.caption }}" loading="lazy"></a><figcaption>{{ p.caption }} (click for full size)</figcaption></figure>{% endfor %}</div>{% endif %}
{% if heatmaps %}<h2>Heatmaps</h2>
<div class="cbar"><span>heatmap colour scale (jet), each map min-max normalised:</span><span>0 low</span><span class="bar" role="img" aria-label="colour bar from dark blue (0, low attribution) through cyan, green and yellow to dark red (1, high)"></span><span>1 high</span>
<span>&middot; CAM target: {{ target_text }} &middot; overlays: final layer {{ layers[-1] if layers else "(not recorded)" }} &middot; FracAtlas boxes drawn.</span></div>
<div class="grid">{% for p in heatmaps %}<figure><a href="{{ p.src }}"><img src="{{ p.src }}" alt="{{ p.caption }}" loading="lazy"></a><figcaption>{{ p.caption }} (click for full size)</figcaption></figure>{% endfor %}</div>{% endif %}
{% endblock %}
"""

MODEL = """{% extends "base.html" %}
{% block title %}{{ r.model }} on {{ t.task }}{% endblock %}
{% block body %}
<p><a href="{{ up }}index.html#task-{{ t.slug }}">&larr; leaderboard</a> &middot; <a href="{{ up }}definitions.html">definitions</a></p>
<h1>{{ r.model }} <small class="notes">on {{ t.task }}</small></h1>
{% if r.flags %}<p class="warn">&#9873; Flagged run(s): {{ r.flags }} &mdash; never ranked or best.</p>{% endif %}
<p class="answer">Protocol: {{ protocol }}.</p>
<dl class="kv">{% for s in summary %}<dt title="{{ s.definition }}">{{ s.label }}</dt><dd>{{ s.text }}</dd>{% endfor %}</dl>
<h2>Seeds</h2>
<div class="scroll"><table class="board">
<caption>{{ r.model }}: one row per seed (run); 95% CI of {{ t.primary_label }} per run on its own test set.</caption>
<thead><tr><th scope="col">seed</th>{% for m in metric_names %}<th scope="col" class="num" title="{{ metric_defs[loop.index0] }}">{{ m }}</th>{% endfor %}<th scope="col" class="num">{{ t.primary_label }} 95% CI</th><th scope="col">flags</th></tr></thead>
<tbody>{% for s in per_seed %}<tr><th scope="row"><a href="{{ s.href }}">s{{ s.seed }}</a></th>{% for v in s.vals %}<td class="num">{{ v }}</td>{% endfor %}<td class="num">{{ s.ci }}</td><td>{{ s.flags }}</td></tr>{% endfor %}</tbody>
</table></div>
{% endblock %}
"""

DEFINITIONS = """{% extends "base.html" %}
{% block title %}Leaderboard definitions{% endblock %}
{% block body %}
<p><a href="index.html">&larr; leaderboard</a></p>
<h1>Definitions</h1>
<p class="notes">Every column of the leaderboard tables{% if docs_href %}; the same text is in <a href="{{ docs_href }}">docs/leaderboards.md</a>{% endif %}.</p>
<dl class="kv">{% for c in cols %}<dt id="col-{{ loop.index }}">{{ c.label }}</dt><dd>{{ c.definition }}</dd>{% endfor %}</dl>
<h2>Statistics and marks</h2>
<dl class="kv">{% for k, v in glossary %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
{% endblock %}
"""

REPORT = """{% extends "base.html" %}
{% block title %}Reporting: {{ t.task }}{% endblock %}
{% block body %}
<p><a href="index.html#task-{{ t.slug }}">&larr; leaderboard</a></p>
<h1>Reporting checklist: {{ t.task }}</h1>
<p class="notes">What the harness can fill of CLAIM 2024, TRIPOD+AI and STARD 2015 from the stored runs; items it cannot
know (intended use, clinical setting, reader studies) are for the authors. Answer: {{ answer }}.</p>
<h2>Data flow (STARD 19 / CLAIM 21 / TRIPOD+AI 20)</h2>
<div class="scroll"><table><caption>Images per split and test images per class, per test split used.</caption>
<thead><tr><th scope="col">split sha256</th><th scope="col">method</th><th scope="col" class="num">train</th><th scope="col" class="num">val</th><th scope="col" class="num">test</th><th scope="col">test per class</th><th scope="col" class="num">runs</th></tr></thead>
<tbody>{% for f in flow %}<tr><th scope="row" class="mono">{{ f.sha }}</th><td>{{ f.method }}</td><td class="num">{{ f.train }}</td><td class="num">{{ f.val }}</td><td class="num">{{ f.test }}</td><td>{{ f.test_classes }}</td><td class="num">{{ f.runs }}</td></tr>{% endfor %}</tbody></table></div>
<h3>Exclusions</h3>
{% if exclusions %}<ul>{% for e in exclusions %}<li>{{ e.what }}: {{ e.n }}</li>{% endfor %}</ul>{% else %}<p class="notes">— (no data report stored for these runs).</p>{% endif %}
<h2>Performance with intervals (STARD 24 / CLAIM 29 / TRIPOD+AI 23)</h2>
<p>{{ answer }}.</p>
<h2>Operating point (STARD 12a)</h2>
{% if op %}<dl class="kv">{% for k, v in op|dictsort %}<dt>{{ k }}</dt><dd class="mono">{{ v }}</dd>{% endfor %}</dl>
{% if test_op %}<p class="notes">Test metrics at that threshold:</p><dl class="kv">{% for k, v in test_op|dictsort %}<dt>{{ k }}</dt><dd class="mono">{{ v }}</dd>{% endfor %}</dl>{% endif %}
{% else %}<p class="notes">— (the best run's record has no operating point; metrics are at threshold 0.5).</p>{% endif %}
<h2>Calibration (TRIPOD+AI 23a)</h2>
{% if calib %}<dl class="kv">{% for c in calib %}<dt title="{{ c.definition }}">{{ c.label }}</dt><dd>{{ c.text }}</dd>{% endfor %}</dl>{% endif %}
{% if reliability %}<a href="{{ reliability }}"><img class="plot" src="{{ reliability }}" alt="reliability diagram of the best run" loading="lazy"></a>{% else %}<p class="notes">No reliability diagram stored for the best run.</p>{% endif %}
<h2>Subgroups (CLAIM 32 / TRIPOD+AI 23b)</h2>
{% if sub_rows %}<div class="scroll"><table><caption>Best run, test metrics per subgroup with n and bootstrap 95% CIs where the group is large enough.</caption>
<thead><tr><th scope="col">by</th><th scope="col">group</th><th scope="col" class="num">n</th><th scope="col" class="num">ROC-AUC</th><th scope="col" class="num">Accuracy</th><th scope="col" class="num">Sensitivity</th><th scope="col" class="num">Specificity</th><th scope="col">note</th></tr></thead>
<tbody>{% for s in sub_rows %}<tr><td>{{ s.by }}</td><th scope="row">{{ s.group }}</th><td class="num">{{ s.n }}</td><td class="num">{{ s.vals.auroc }}</td><td class="num">{{ s.vals.accuracy }}</td><td class="num">{{ s.vals.recall }}</td><td class="num">{{ s.vals.specificity }}</td><td>{{ s.note }}</td></tr>{% endfor %}</tbody></table></div>
{% else %}<p class="notes">— (the best run's record has no subgroup results).</p>{% endif %}
<h2>Failure cases (CLAIM 33)</h2>
{% if gallery %}<div class="grid">{% for g in gallery %}<figure><a href="{{ g.src }}"><img src="{{ g.src }}" alt="{{ g.caption }}" loading="lazy"></a><figcaption>{{ g.caption }}</figcaption></figure>{% endfor %}</div>
{% else %}<p class="notes">— (no stored heatmaps of false positives / negatives{% if t.dataset == 'mura' %}; MURA images are never published{% endif %}).</p>{% endif %}
<h2>Code and data availability (CLAIM 41-42 / TRIPOD+AI 18)</h2>
<p>Code: fracture-bench {{ version }}; runs at commit(s) {{ run_commits|join(", ") if run_commits else "not recorded" }}.
Data: {% if t.dataset == 'fracatlas' %}{{ credit }}{% elif t.dataset == 'mura' %}{{ mura_note }}{% else %}{{ t.dataset }}{% endif %}</p>
{% endblock %}
"""

DETECTION = """{% extends "base.html" %}
{% block title %}Fracture detection leaderboard{% endblock %}
{% block body %}
<p><a href="index.html">&larr; leaderboard</a></p>
<h1>Fracture detection (YOLOv8 boxes on FracAtlas)</h1>
<p class="notes">{{ n_runs }} stored detection run(s) (<code>task.kind: detection</code>), grouped by protocol, model, image size,
epochs and weights; mean &plusmn; sd over seeds. {{ note }} Column definitions are <a href="#det-columns">below the tables</a>.</p>
{% for t in tables %}<section id="det-{{ t.name }}"><h2>{{ t.title }}</h2>
<div class="scroll"><table id="det-table-{{ t.name }}"><caption>{{ t.title }}: this harness's rows first, then numbers reported elsewhere (validation split, where they were measured)</caption>
<thead><tr>{% for c in t.columns %}<th scope="col" title="{{ c.definition }}">{{ c.label }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in t.rows %}<tr{% if r.lit %} class="lit"{% endif %}>{% for v in r.cells %}{% if loop.first %}<th scope="row">{{ v }}</th>{% else %}<td>{{ v }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody></table></div>
<p class="notes"><a href="detection_{{ t.name }}.md">detection_{{ t.name }}.md</a> &middot; <a href="detection_{{ t.name }}.csv">detection_{{ t.name }}.csv</a></p></section>
{% endfor %}
<h2 id="det-columns">Columns</h2>
<dl class="kv">{% for k, v in definitions %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
{% endblock %}
"""

PAGES = {"base.html": BASE, "header.html": HEADER, "section.html": TASK_SECTION, "index.html": INDEX,
         "run.html": RUN, "model.html": MODEL, "definitions.html": DEFINITIONS, "report.html": REPORT,
         "detection.html": DETECTION}
