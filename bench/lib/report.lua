-- report.lua - the results of a bench run: medians and spreads, moonlog's ratio
-- to each peer, and the three outputs (the printed table, CSV, an SVG chart).
local R = {}

local function sorted(t)
	local s = {}
	for i, v in ipairs(t) do
		s[i] = v
	end
	table.sort(s)
	return s
end

function R.median(t)
	local s = sorted(t)
	local n = #s
	if n == 0 then
		return nil
	end
	return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

-- A row: one workload (and variant and metric) on one system and setting.
function R.row(w, system, setting, values, note)
	local s = sorted(values or {})
	return {
		workload = w.name, metric = w.metric, unit = w.unit, better = w.better,
		system = system, setting = setting, values = values or {}, note = note,
		median = R.median(s), min = s[1], max = s[#s],
	}
end

-- moonlog's factor over each peer row: > 1 means moonlog is ahead. Taken against its
-- durable default, never against the no-sync ceiling row (r.ceiling).
function R.ratios(rows)
	local ml = {}
	for _, r in ipairs(rows) do
		if r.system == "moonlog" and r.median and not r.ceiling then
			ml[r.workload .. "|" .. r.metric] = r
		end
	end
	for _, r in ipairs(rows) do
		local m = ml[r.workload .. "|" .. r.metric]
		if r.system ~= "moonlog" and m and r.median and r.median > 0 and m.median > 0 then
			r.ratio = r.better == "higher" and m.median / r.median or r.median / m.median
		end
	end
end

local function num(v)
	if v == nil then
		return ""
	end
	if v >= 100 then
		return string.format("%.0f", v)
	end
	return string.format("%.1f", v)
end

local function result(r)
	if not r.median then
		return r.note or "not measured"
	end
	return num(r.median) .. " " .. r.unit
end

local function spread(r)
	if not r.median then
		return ""
	end
	local pct = r.median > 0 and (r.max - r.min) / r.median * 100 or 0
	return string.format("%s-%s (±%.0f%%)", num(r.min), num(r.max), pct / 2)
end

local function ratio(r)
	if r.ratio then
		return string.format("%.2fx", r.ratio)
	end
	return (r.system == "moonlog" or not r.median) and "" or "-"
end

function R.table(rows)
	local cols = { "workload", "system", "durability", "result (median)", "spread min-max", "n",
		"moonlog ratio" }
	local lines = {}
	for _, r in ipairs(rows) do
		lines[#lines + 1] = { r.workload .. " " .. r.metric, r.system, r.setting, result(r), spread(r),
			r.median and tostring(#r.values) or "", ratio(r) }
	end
	local width = {}
	for i, c in ipairs(cols) do
		width[i] = #c
		for j, l in ipairs(lines) do
			if i ~= 4 or rows[j].median then -- a "not measured" note may run over
				width[i] = math.max(width[i], utf8.len(l[i]) or #l[i])
			end
		end
	end
	local out = {}
	local function put(l)
		local cells = {}
		for i, c in ipairs(l) do
			cells[i] = c .. string.rep(" ", math.max(0, width[i] - (utf8.len(c) or #c)))
		end
		out[#out + 1] = table.concat(cells, "  "):gsub("%s+$", "")
	end
	put(cols)
	local rule = {}
	for i = 1, #cols do
		rule[i] = string.rep("-", width[i])
	end
	put(rule)
	for _, l in ipairs(lines) do
		put(l)
	end
	return table.concat(out, "\n")
end

local function csv_cell(v)
	v = v == nil and "" or tostring(v)
	if v:find('[,"\n]') then
		v = '"' .. v:gsub('"', '""') .. '"'
	end
	return v
end

function R.csv(rows)
	local out = { "workload,metric,system,durability,unit,median,min,max,runs,moonlog_ratio,note" }
	for _, r in ipairs(rows) do
		local cells = { r.workload, r.metric, r.system, r.setting, r.unit,
			r.median and string.format("%.1f", r.median), r.min and string.format("%.1f", r.min),
			r.max and string.format("%.1f", r.max), #r.values,
			r.ratio and string.format("%.3f", r.ratio), r.note }
		for i = 1, 11 do
			cells[i] = csv_cell(cells[i])
		end
		out[#out + 1] = table.concat(cells, ",")
	end
	return table.concat(out, "\n") .. "\n"
end

local function esc(s)
	return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end

-- One panel per workload and metric: a bar per system (median), a whisker for
-- the spread, the value at the end; rows not measured say why in grey.
function R.svg(rows, title, subtitle)
	local panels, order = {}, {}
	for _, r in ipairs(rows) do
		local k = r.workload .. " " .. r.metric
		if not panels[k] then
			panels[k] = {}
			order[#order + 1] = k
		end
		table.insert(panels[k], r)
	end
	local W, label, barw, rh = 960, 330, 450, 20
	local out, y = {}, 60
	local function add(s, ...)
		out[#out + 1] = string.format(s, ...)
	end
	for _, k in ipairs(order) do
		local p = panels[k]
		local max = 0
		for _, r in ipairs(p) do
			max = math.max(max, r.max or 0)
		end
		add('<text x="10" y="%d" class="h">%s (%s is better)</text>', y + 14, esc(k),
			p[1].better == "higher" and "longer" or "shorter")
		y = y + 22
		for _, r in ipairs(p) do
			add('<text x="%d" y="%d" class="l" text-anchor="end">%s · %s</text>', label - 8, y + 14,
				esc(r.system), esc(r.setting))
			if r.median and max > 0 then
				local w = r.median / max * barw
				local color = r.system == "moonlog" and "#d9822b" or "#4a78b0"
				add('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>', label, y + 3, w, rh - 6,
					color)
				local x0, x1 = label + r.min / max * barw, label + r.max / max * barw
				add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#222"/>', x0, y + rh / 2, x1,
					y + rh / 2)
				add('<text x="%.1f" y="%d" class="v">%s %s%s</text>', label + math.max(w, x1 - label) + 6,
					y + 14, num(r.median), esc(r.unit), r.ratio and
					string.format("  (moonlog %.2fx)", r.ratio) or "")
			else
				add('<text x="%d" y="%d" class="n">%s</text>', label, y + 14, esc(r.note or "not measured"))
			end
			y = y + rh
		end
		y = y + 12
	end
	local head = {
		'<?xml version="1.0" encoding="UTF-8"?>',
		string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
			'font-family="sans-serif" font-size="12">', W, y + 10),
		'<style>.t{font-size:16px;font-weight:bold}.h{font-weight:bold}.l{fill:#222}' ..
			'.v{fill:#222}.n{fill:#888;font-style:italic}</style>',
		'<rect width="100%" height="100%" fill="white"/>',
		string.format('<text x="10" y="22" class="t">%s</text>', esc(title)),
		string.format('<text x="10" y="42" class="n">%s</text>', esc(subtitle)),
	}
	return table.concat(head, "\n") .. "\n" .. table.concat(out, "\n") .. "\n</svg>\n"
end

return R
