-- Short inline code (a command, an option, a name) is never broken
-- across lines: "python -m aecore --help" stays on one line instead of
-- leaving "--help" at the start of the next. In the PDF it goes in an
-- \mbox; in the HTML it gets the class `nowrap` (styles.css). Longer
-- inline code may still break at its spaces.
local MAX_UNBROKEN = 32

function Code(el)
  if utf8.len(el.text) > MAX_UNBROKEN then
    return nil
  end
  if FORMAT:match("latex") then
    return {pandoc.RawInline("latex", "\\mbox{"), el,
            pandoc.RawInline("latex", "}")}
  end
  if FORMAT:match("html") then
    el.classes:insert("nowrap")
    return el
  end
end
