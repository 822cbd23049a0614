"""The Lua scripts of the Redis backplane: each one is atomic in Redis.

Keys (``{p}`` is the prefix): ``{p}:s:{session}`` (a Stream of the session's recent
messages), ``{p}:s:{session}:meta`` (a hash: owner, epoch, user, next),
``{p}:conns:{user}`` (a set of ``{node}/{connection}``), ``{p}:node:{node}``
(liveness).

A session's ``owner`` is a *tenure*, ``{node}.{n}``: one node's holding of the
session, from the moment it started or took the session over until it gave it up
(``""``). Every write carries the writer's tenure and is refused under another, so a
copy that lost the session, or writes queued before a take-over, cannot overwrite
the history (a fencing token).
"""

from __future__ import annotations

APPEND = """
local owner = redis.call('HGET', KEYS[2], 'owner')
local fresh = ARGV[7] == '1'
if fresh and owner and owner ~= ARGV[1] then
  if redis.call('HGET', KEYS[2], 'user') ~= ARGV[3] then return -1 end
elseif owner and owner ~= ARGV[1] and not fresh then
  return 0
end
if fresh then redis.call('DEL', KEYS[1]) end
for i = 8, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'o', ARGV[i], 'f', ARGV[i + 1])
end
redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'epoch', ARGV[2], 'user', ARGV[3],
           'next', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""
"""KEYS: stream, meta. ARGV: tenure, epoch, user (JSON), next offset, expiry (ms), maxlen,
fresh ("1": the batch starts the session at offset 0), then offset, frame, ...
Returns 1 (written), 0 (another tenure owns the session: nothing written) or -1 (a
fresh session of another user's id: nothing written)."""

CLAIM = """
local meta = redis.call('HGETALL', KEYS[2])
if #meta == 0 then return false end
local fields = {}
for i = 1, #meta, 2 do fields[meta[i]] = meta[i + 1] end
if fields['user'] ~= ARGV[2] then return {'refused'} end
local owner = fields['owner'] or ''
if owner ~= '' and owner == ARGV[3] then return {'mine'} end
local node = string.match(owner, '^[^.]*')
if owner ~= '' and node ~= string.match(ARGV[1], '^[^.]*') and ARGV[4] ~= '1'
   and redis.call('EXISTS', ARGV[5] .. node) == 1 then
  return {'held', owner}
end
redis.call('HSET', KEYS[2], 'owner', ARGV[1])
return {'adopted', meta, redis.call('XRANGE', KEYS[1], '-', '+')}
"""
"""KEYS: stream, meta. ARGV: new tenure, user (JSON), current tenure here ("" for none),
force ("1"), node key prefix. Returns nil (unknown), {'refused'} (another user's:
nothing changed), {'mine'} (the copy here is current), {'held', owner} (a live
other node owns it: ask it to release first; nothing changed) or {'adopted', meta,
entries} (the new tenure owns it now)."""

RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'owner', '')
end
return redis.call('PUBLISH', ARGV[2], ARGV[3])
"""
"""KEYS: meta. ARGV: tenure, channel, message. Gives the session up (if the tenure
owns it), then announces it on the channel: after every write queued before it."""

FORGET = """
local owner = redis.call('HGET', KEYS[2], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""
"""KEYS: stream, meta. ARGV: tenure. Only the owner deletes: another may have adopted it."""

ADMIT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {1, -1} end
local live, held = {}, 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local node = string.match(member, '^[^/]*')
  if live[node] == nil then live[node] = redis.call('EXISTS', ARGV[3] .. node) == 1 end
  if live[node] then held = held + 1 else redis.call('SREM', KEYS[1], member) end
end
if held >= tonumber(ARGV[2]) then return {0, held} end
redis.call('SADD', KEYS[1], ARGV[1])
return {1, held + 1}
"""
"""KEYS: the user's connection set. ARGV: member (``node/connection``), limit, node key
prefix. Counts the members of live nodes (dropping those of dead ones) and adds the
member if fewer than ``limit`` are held: {1, held} admitted, {0, held} refused.
Already a member (a retried call): admitted."""

ELSEWHERE = """
local live, held = {}, 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local node = string.match(member, '^[^/]*')
  if node ~= ARGV[1] then
    if live[node] == nil then live[node] = redis.call('EXISTS', ARGV[2] .. node) == 1 end
    if live[node] then held = held + 1 end
  end
end
return held
"""
"""KEYS: the user's connection set. ARGV: this node, node key prefix. Connections of
other live nodes."""


class Keys:
    """The names of every key and channel of one deployment (one ``prefix``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.fanout = f"{prefix}:fanout"
        """The pub/sub channel."""
        self.node_prefix = f"{prefix}:node:"
        """Followed by a node id: that node's liveness key."""

    def session(self, session_id: str) -> list[str]:
        """The session's stream and meta hash."""
        stream = f"{self.prefix}:s:{session_id}"
        return [stream, stream + ":meta"]

    def node(self, node: str) -> str:
        """A node's liveness key."""
        return self.node_prefix + node

    def conns(self, user: str) -> str:
        """The set of a user's connections, ``{node}/{connection}``."""
        return f"{self.prefix}:conns:{user}"
