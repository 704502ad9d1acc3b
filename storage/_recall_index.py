"""The inverted index behind recall search: tokeniser, query parser, key names, search script.

Index layout (every key carries the agent's hash tag, so one MULTI or script covers them all):

- ``mg:{A}:ix:<term>``       ZSET seq -> K + seq, one per term (``keys.agent_recall_index``)
- ``mg:{A}:recall:role:<r>`` ZSET seq -> K + seq, one per role (role filter, per-role counts)
- ``mg:{A}:recall:times``    ZSET seq -> created_at (date filter)
- ``mg:{A}:recall:text``     HASH seq -> casefolded searchable text (phrase check)
- ``mg:{A}:recall:terms``    SET of the agent's terms (so deleting never needs SCAN)
- ``mg:{A}:recall:tmp:<n>``  scratch sets of the search script, deleted before it returns

Posting scores are ``K + seq`` with ``K = 2**40``: intersecting (AGGREGATE MAX) keeps them, so
the newest match is the highest score, and a plain ZUNIONSTORE (SUM) gives
``count * (K + seq)``, which ranks by the number of matched terms first and by seq second
(``K`` exceeds ``MAX_QUERY_TERMS * MAX_SEQ``). Members are seqs rather than message ids
because they are 5-10 times shorter, and the postings are most of the index's memory.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgspec

from storage import keys
from storage.records import Message

__all__ = (
    "MAX_QUERY_TERMS",
    "MAX_SEQ",
    "ROLES",
    "SCORE_BASE",
    "SEARCH_SCRIPT",
    "Query",
    "fold",
    "index_terms",
    "parse_query",
    "role_key",
    "searchable_text",
    "term_key",
    "terms_key",
    "text_key",
    "times_key",
    "tmp_keys",
    "tokenize",
)

SCORE_BASE = 2**40
MAX_SEQ = 2**32 - 1
MAX_QUERY_TERMS = 32
MAX_TERM_CHARS = 64
ROLES = ("system", "user", "assistant", "tool")

# Han, kana and CJK compatibility ideographs are written without spaces: each character is a
# token of its own, and a run of them in a query becomes a phrase (so word order still counts).
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_CJK_RUN = re.compile(rf"[{_CJK}]{{2,}}")
_QUOTED = re.compile(r'"([^"]*)"')

_STOP_WORDS = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    s t d ll m re ve y don
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


def fold(text: str) -> str:
    """Casefolded NFKC text: composed and decomposed accents, full-width forms compare equal."""
    return unicodedata.normalize("NFKC", text.casefold())


def tokenize(text: str) -> list[str]:
    """Index terms of ``text`` in order: casefolded unicode words without stop words.

    The same function runs at index and query time. Words longer than 64 characters are cut
    to 64 (a base64 blob must not make a huge key name).
    """
    return [
        token[:MAX_TERM_CHARS] for token in _TOKEN.findall(fold(text)) if token not in STOP_WORDS
    ]


def _json_strings(value: object) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float):
            yield str(item)
        elif isinstance(item, dict):
            # Bookkeeping fields of tool results (status, time) are not what anyone searches
            # for, and every distinct timestamp would grow the index by new terms.
            stack.extend(reversed([v for k, v in item.items() if k not in _BOOKKEEPING_KEYS]))
        elif isinstance(item, list):
            stack.extend(reversed(item))


_BOOKKEEPING_KEYS = frozenset({"time", "status", "request_heartbeat"})


def _text_parts(raw: str) -> Iterator[str]:
    """The words a person would search for in ``raw``: the values of a JSON object (a tool
    return, tool-call arguments such as ``send_message``'s ``message``), else the text."""
    stripped = raw.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            decoded = msgspec.json.decode(stripped)
        except msgspec.DecodeError:
            yield raw
        else:
            yield from _json_strings(decoded)
    elif raw:
        yield raw


def searchable_text(message: Message) -> str:
    """Casefolded text that search looks at: content and tool-call arguments, one part a line,
    whitespace runs collapsed to one space (so a phrase matches across line breaks)."""
    raw: list[str] = [message.content]
    raw.extend(call.arguments for call in message.tool_calls)
    lines = (" ".join(fold(part).split()) for text in raw for part in _text_parts(text))
    return "\n".join(line for line in lines if line)


def index_terms(text: str) -> set[str]:
    """The distinct terms under which a message with this searchable text is indexed."""
    return set(tokenize(text))


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed search query.

    Attributes:
        required: terms of the phrases; every match has all of them.
        loose: the other terms; all of them, else (fallback) as many as possible.
        phrases: casefolded, whitespace-collapsed phrases that must appear verbatim.
    """

    required: tuple[str, ...]
    loose: tuple[str, ...]
    phrases: tuple[str, ...]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse_query(query: str) -> Query:
    """Split ``query`` into phrase terms, loose terms and phrases (at most 32 terms)."""
    phrases = [" ".join(fold(p).split()) for p in _QUOTED.findall(query)]
    rest = _QUOTED.sub(" ", query).replace('"', " ")
    phrases += _CJK_RUN.findall(fold(rest))
    phrases = _unique(p for p in phrases if p)
    required = _unique(t for p in phrases for t in tokenize(p))
    loose = [t for t in _unique(tokenize(rest)) if t not in required]
    terms = (required + loose)[:MAX_QUERY_TERMS]
    return Query(
        required=tuple(t for t in terms if t in required),
        loose=tuple(t for t in terms if t not in required),
        phrases=tuple(phrases),
    )


# --- key names (private until storage/keys.py grows them) -----------------------------------


def _recall(agent_id: str, suffix: str) -> str:
    return f"{keys.PREFIX}:{{{agent_id}}}:recall:{suffix}"


def term_key(agent_id: str, term: str) -> str:
    """Posting list of ``term``."""
    return keys.agent_recall_index(agent_id, term)


def role_key(agent_id: str, role: str) -> str:
    """Seqs of the agent's messages of ``role``."""
    return _recall(agent_id, f"role:{role}")


def times_key(agent_id: str) -> str:
    """Seq -> created_at of every message."""
    return _recall(agent_id, "times")


def text_key(agent_id: str) -> str:
    """Seq -> searchable text of every message."""
    return _recall(agent_id, "text")


def terms_key(agent_id: str) -> str:
    """Every term the agent's index holds."""
    return _recall(agent_id, "terms")


def tmp_keys(agent_id: str) -> tuple[str, str, str]:
    """The search script's scratch keys."""
    return (_recall(agent_id, "tmp:1"), _recall(agent_id, "tmp:2"), _recall(agent_id, "tmp:3"))


# --- the search script ---------------------------------------------------------------------

# KEYS: tmp1 tmp2 tmp3 messages times text, then required terms, loose terms, roles to exclude,
#       roles to scan (used only when the query has phrases but no terms).
# ARGV: n_required n_loose n_exclude n_scan start stop offset limit n_phrases phrases...
# Returns {mode, total, id...}: the page's message ids, newest (or best, in "any" mode) first.
# Scratch writes are not replicated (REPL_NONE): they are gone when the script returns.
SEARCH_SCRIPT = """
redis.set_repl(redis.REPL_NONE)
local t1, t2, t3 = KEYS[1], KEYS[2], KEYS[3]
local messages, times, texts = KEYS[4], KEYS[5], KEYS[6]
local nreq, nloose = tonumber(ARGV[1]), tonumber(ARGV[2])
local nexcl, nscan = tonumber(ARGV[3]), tonumber(ARGV[4])
local start, stop = ARGV[5], ARGV[6]
local offset, limit = tonumber(ARGV[7]), tonumber(ARGV[8])
local phrases = {}
for i = 1, tonumber(ARGV[9]) do phrases[i] = ARGV[9 + i] end

local function slice(first, n)
  local out = {}
  for i = 1, n do out[i] = KEYS[first + i - 1] end
  return out
end
local req = slice(7, nreq)
local loose = slice(7 + nreq, nloose)
local excl = slice(7 + nreq + nloose, nexcl)
local scan = slice(7 + nreq + nloose + nexcl, nscan)
local terms = {}
for _, k in ipairs(req) do terms[#terms + 1] = k end
for _, k in ipairs(loose) do terms[#terms + 1] = k end

redis.call('DEL', t1, t2, t3)

local function intersect(dest, ks)
  if #ks == 1 then return ks[1] end
  local args = {dest, #ks}
  for _, k in ipairs(ks) do args[#args + 1] = k end
  args[#args + 1] = 'AGGREGATE'
  args[#args + 1] = 'MAX'
  redis.call('ZINTERSTORE', unpack(args))
  return dest
end

local function filter(cand)
  if nexcl > 0 then
    redis.call('ZDIFFSTORE', t2, 1 + nexcl, cand, unpack(excl))
    cand = t2
  end
  if start ~= '-inf' or stop ~= '+inf' then
    redis.call('ZINTERSTORE', t3, 2, cand, times, 'WEIGHTS', 0, 1)
    if start ~= '-inf' then redis.call('ZREMRANGEBYSCORE', t3, '-inf', '(' .. start) end
    if stop ~= '+inf' then redis.call('ZREMRANGEBYSCORE', t3, '(' .. stop, '+inf') end
    redis.call('ZINTERSTORE', t2, 2, cand, t3, 'WEIGHTS', 1, 0)
    cand = t2
  end
  return cand
end

local function page(cand)
  if #phrases == 0 then
    return redis.call('ZCARD', cand), redis.call('ZREVRANGE', cand, offset, offset + limit - 1)
  end
  local total, seqs, n, i = 0, {}, redis.call('ZCARD', cand), 0
  while i < n do
    local chunk = redis.call('ZREVRANGE', cand, i, i + 511)
    local found = redis.call('HMGET', texts, unpack(chunk))
    for j, seq in ipairs(chunk) do
      local text, ok = found[j], found[j] and true
      if ok then
        for _, p in ipairs(phrases) do
          if not string.find(text, p, 1, true) then ok = false; break end
        end
      end
      if ok then
        if total >= offset and total < offset + limit then seqs[#seqs + 1] = seq end
        total = total + 1
      end
    end
    i = i + 512
  end
  return total, seqs
end

local mode, total, seqs = 'all', 0, {}
if #terms == 0 then
  local cand = scan[1]
  if nscan > 1 then
    redis.call('ZUNIONSTORE', t1, nscan, unpack(scan))
    cand = t1
  end
  total, seqs = page(filter(cand))
else
  total, seqs = page(filter(intersect(t1, terms)))
  if total == 0 and (nloose > 1 or (nloose > 0 and nreq > 0)) then
    mode = 'any'
    local cand
    if nreq > 0 then
      local r = intersect(t3, req)
      local ks = {r}
      for _, k in ipairs(loose) do ks[#ks + 1] = k end
      redis.call('ZUNIONSTORE', t1, #ks, unpack(ks))
      redis.call('ZINTERSTORE', t1, 2, t1, r, 'WEIGHTS', 1, 0)
    else
      redis.call('ZUNIONSTORE', t1, nloose, unpack(loose))
    end
    total, seqs = page(filter(t1))
  end
end

local out = {mode, total}
for _, seq in ipairs(seqs) do
  local id = redis.call('ZRANGEBYSCORE', messages, seq, seq, 'LIMIT', 0, 1)[1]
  if id then out[#out + 1] = id end
end
redis.call('DEL', t1, t2, t3)
return out
"""
