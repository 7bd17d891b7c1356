-- ended(state): whether an entry's state is final (ledger.TERMINAL_STATES in Python).
-- Included by the scripts that must leave an ended entry alone (worker/lua/__init__.py).
local function ended(state)
  return state == 'published' or state == 'duplicate' or state == 'unchanged'
    or state == 'failed'
end
