-- In the PDF, short inline code (a command, an option, a name) is never
-- broken across lines: "python -m aecore --help" stays on one line
-- instead of leaving "--help" at the start of the next. Longer inline
-- code may still break at its spaces. HTML is left as it is.
local MAX_UNBROKEN = 32

function Code(el)
  if FORMAT:match("latex") and utf8.len(el.text) <= MAX_UNBROKEN then
    return {pandoc.RawInline("latex", "\\mbox{"), el,
            pandoc.RawInline("latex", "}")}
  end
end
