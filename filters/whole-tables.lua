-- In the PDF, a table marked `whole` (aecore.text.markdown_table does it
-- for short tables) is set as a `tabular` instead of pandoc's breakable
-- `longtable`. Quarto then puts it in a `table` float, which LaTeX moves
-- whole to where it fits (here, else the top of a following page) while
-- the text goes on filling the page: no split table and no page left
-- part-empty. A table marked `wide` as well (many columns, set small) is
-- spread over the text width, so that its columns do not crowd. Only the
-- table's frame is raw LaTeX: the cells stay pandoc inlines, so
-- citations, math and emphasis in them are processed as anywhere else.
-- HTML is left as it is.

local ALIGN = {AlignLeft = "l", AlignRight = "r", AlignCenter = "c",
               AlignDefault = "l"}

local function raw(tex)
  return pandoc.RawInline("latex", tex)
end

-- one row: the cells' inlines joined by " & ", ended by "\\"
local function add_row(out, row)
  for i, cell in ipairs(row.cells) do
    if i > 1 then out:insert(raw(" & ")) end
    out:extend(pandoc.utils.blocks_to_inlines(cell.contents))
  end
  out:insert(raw(" \\\\\n"))
end

-- `wide`: a tabular* as wide as the text, the columns spread evenly
local function tabular(tbl, wide)
  local spec = ""
  for _, colspec in ipairs(tbl.colspecs) do
    spec = spec .. ALIGN[colspec[1]]
  end
  local env = wide and "tabular*" or "tabular"
  local begin = wide
    and "\\begin{tabular*}{\\linewidth}{@{\\extracolsep{\\fill}}"
    or "\\begin{tabular}{@{}"
  local out = pandoc.Inlines({raw(
    "{\\aetablesize\\setlength{\\tabcolsep}{\\aetabcolsep}%\n"
    .. begin .. spec .. "@{}}\n\\toprule\n")})
  for _, row in ipairs(tbl.head.rows) do add_row(out, row) end
  out:insert(raw("\\midrule\n"))
  for _, body in ipairs(tbl.bodies) do
    for _, row in ipairs(body.head) do add_row(out, row) end
    for _, row in ipairs(body.body) do add_row(out, row) end
  end
  for _, row in ipairs(tbl.foot.rows) do add_row(out, row) end
  out:insert(raw("\\bottomrule\n\\end{" .. env .. "}}"))
  return pandoc.Plain(out)
end

function Div(div)
  if not div.classes:includes("whole") or not FORMAT:match("latex") then
    return nil
  end
  local wide = div.classes:includes("wide")
  return div.content:walk({
    Table = function(tbl) return tabular(tbl, wide) end,
  })
end
