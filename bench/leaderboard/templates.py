"""Jinja2 templates of the static site, kept in Python so they ship with the package.

Autoescape is on for every template (``render.environment``): names from configs and file names
are text, never markup. Nothing is loaded from the network: CSS and JS are inline.
"""

CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#fff}
main{max-width:1280px;margin:0 auto;padding:12px}
h1{font-size:1.4rem;margin:.4em 0}h2{font-size:1.15rem;margin:1.4em 0 .4em}h3{font-size:1rem}
a{color:#0b5cad}
.scroll{overflow-x:auto;max-width:100%;border:1px solid #d8dee4;border-radius:6px;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:left;white-space:nowrap;vertical-align:top}
td.num,th.num{text-align:right}
thead th{background:#f6f8fa;position:sticky;top:0}
th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer;color:inherit}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
tr.lit{background:#fbf7ea;color:#555}
tr.best td{font-weight:600}
.badge{display:inline-block;font-size:.72rem;padding:0 6px;border-radius:9px;background:#e9d9a6;color:#4a3b00;margin-left:4px}
.badge.ours{background:#d4e8d4;color:#17401a}
.sig{font-weight:700}
.notes{color:#444;font-size:.9rem;max-width:100%;overflow-wrap:anywhere}
.notes code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:10px}
figure{margin:0;border:1px solid #eaeef2;border-radius:6px;padding:6px}
figure img{max-width:100%;height:auto;display:block;image-rendering:auto}
figcaption{font-size:.8rem;color:#555;overflow-wrap:anywhere}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:.9rem}
dl.kv dt{color:#555}dl.kv dd{margin:0;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:8px;border-radius:6px}
@media (max-width:600px){main{padding:8px}body{font-size:14px}}
"""

SORT_JS = """
(function(){
  function key(td,type){var v=td.getAttribute('data-v');if(v===null)v=td.textContent.trim();
    if(type==='num'){var f=parseFloat(v);return isNaN(f)?null:f;}return v===''?null:v.toLowerCase();}
  document.querySelectorAll('table.sortable').forEach(function(tbl){
    var ths=tbl.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths,function(th,col){
      var b=th.querySelector('button');if(!b)return;
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
})();
"""

INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fracture benchmark leaderboard</title>
<style>{{ css }}</style></head>
<body><main>
<h1>Fracture X-ray classification leaderboard</h1>
<p class="notes">{{ n_runs }} complete runs in {{ tables|length }} task table(s).
Rows: one (model, protocol) over its seeds, mean &plusmn; sample std. CI: 95% bootstrap CI of the reference
run (lowest seed). Marks: <span class="sig">&#9733;</span> best row,
<span class="sig">&asymp;</span> not significantly different from the best (p &ge; {{ alpha }}),
<span class="sig">&darr;</span> significantly worse, &ldquo;not comparable&rdquo;: no run on the same test split.
Rows with the <span class="badge">reported elsewhere</span> badge are published numbers under other protocols:
never ranked. Click a column header to sort.
{% if n_skipped %}{{ n_skipped }} run folder(s) skipped (see <a href="report.md">report.md</a>).{% endif %}</p>
{% for t in tables %}
<section id="task-{{ t.slug }}">
<h2>{{ t.task }} <small class="notes">({{ t.kind }}{% if t.study_level %}, study level{% endif %};
primary metric {{ t.primary_label }}; test: {{ t.test_name }})</small></h2>
<ul class="notes">{% for n in t.notes %}<li>{{ n }}</li>{% endfor %}</ul>
<div class="scroll"><table class="sortable" id="table-{{ t.slug }}">
<thead><tr>{% for c in t.columns %}<th data-type="{{ c.type }}" aria-sort="none" data-col="{{ c.key }}"{% if c.type == 'num' %} class="num"{% endif %}><button type="button">{{ c.label }}</button></th>{% endfor %}</tr></thead>
<tbody>
{% for r in t.rows %}<tr class="{{ r.cls }}" data-model="{{ r.model }}">{% for c in r.cells %}<td{% if c.v is not none %} data-v="{{ c.v }}"{% endif %}{% if c.num %} class="num"{% endif %}{% if c.title %} title="{{ c.title }}"{% endif %}>{% if c.links %}{{ c.text }}{% for l in c.links %} <a href="{{ l.href }}">{{ l.text }}</a>{% endfor %}{% else %}{{ c.text }}{% endif %}{% if c.badge %} <span class="badge{% if c.badge == 'this benchmark' %} ours{% endif %}">{{ c.badge }}</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
{% if t.literature %}<p class="notes">Reported elsewhere:{% for l in t.literature %} <br>&bull; {{ l.source }}: {{ l.protocol }}. {{ l.citation }}{% endfor %}</p>{% endif %}
</section>
{% endfor %}
<p class="notes">Files: {% for t in tables %}<a href="{{ t.slug }}.md">{{ t.slug }}.md</a> <a href="{{ t.slug }}.csv">{{ t.slug }}.csv</a> &middot; {% endfor %}<a href="runs.csv">runs.csv</a> &middot; <a href="report.md">report.md</a></p>
</main>
<script>{{ js }}</script>
</body></html>
"""

RUN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ r.run_id }}</title>
<style>{{ css }}</style></head>
<body><main>
<p><a href="../index.html#task-{{ task_slug }}">&larr; leaderboard</a></p>
<h1 class="mono">{{ r.run_id }}</h1>
<dl class="kv">
<dt>task</dt><dd>{{ r.task }} ({{ r.task_kind }}{% if r.study_level %}, study level{% endif %})</dd>
<dt>model</dt><dd>{{ r.model }}{% if r.model_family %} ({{ r.model_family }}){% endif %}{% if r.pretrained %}, pretrained{% endif %}</dd>
<dt>seed</dt><dd>{{ r.seed }}</dd>
<dt>protocol</dt><dd class="mono">{{ protocol }}</dd>
<dt>split</dt><dd class="mono">{{ r.split_method }} sha256 {{ r.split_sha256 }} &middot; train {{ counts.train }} / val {{ counts.val }} / test {{ counts.test }}</dd>
<dt>best epoch</dt><dd>{{ best_epoch }}</dd>
<dt>cost</dt><dd>{{ cost }}</dd>
<dt>created</dt><dd>{{ r.created_at }}{% if r.sweep_id %} &middot; sweep {{ r.sweep_id }}{% endif %}{% if r.tags %} &middot; tags {{ r.tags }}{% endif %}</dd>
<dt>run folder</dt><dd class="mono">{{ r.path }}</dd>
</dl>
<h2>Metrics</h2>
<div class="scroll"><table>
<thead><tr><th>split</th>{% for m in metric_names %}<th class="num">{{ m }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in metric_rows %}<tr><td>{{ row.split }}</td>{% for v in row.vals %}<td class="num">{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table></div>
<p class="notes">{{ ci_note }}</p>
{% if cms %}<h2>Confusion matrix</h2>{% for cm in cms %}<h3>{{ cm.split }}</h3><div class="scroll"><table>
<thead><tr><th>true \\ predicted</th>{% for c in classes %}<th class="num">{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in cm.rows %}<tr><th>{{ row.name }}</th>{% for v in row.vals %}<td class="num">{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody></table></div>{% endfor %}{% endif %}
{% if explain %}<h2>Localisation (final CAM layer)</h2><dl class="kv">{% for k, v in explain %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>{% endif %}
{% if plots %}<h2>Plots</h2><div class="grid">{% for p in plots %}<figure><img src="{{ p.src }}" alt="{{ p.caption }}" loading="lazy"><figcaption>{{ p.caption }}</figcaption></figure>{% endfor %}</div>{% endif %}
{% if heatmaps %}<h2>Heatmaps</h2><div class="grid">{% for p in heatmaps %}<figure><img src="{{ p.src }}" alt="{{ p.caption }}" loading="lazy"><figcaption>{{ p.caption }}</figcaption></figure>{% endfor %}</div>{% endif %}
</main></body></html>
"""
