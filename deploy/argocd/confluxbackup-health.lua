-- Argo CD health check for conflux.io/ConfluxBackup.
-- Decided from the Succeeded condition, never from status.phase.
-- Written for Lua 5.1 (Argo CD runs gopher-lua).
local hs = {}

local succeeded = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Succeeded" then
      succeeded = c
    end
  end
end

local function describe(c, fallback)
  local text = c.message
  if text == nil or text == "" then
    text = c.reason
  end
  if text == nil or text == "" then
    return fallback
  end
  return text
end

if succeeded == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the backup to run"
elseif succeeded.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(succeeded, "Backup succeeded")
elseif succeeded.status == "False" then
  hs.status = "Degraded"
  hs.message = "Backup failed: " .. describe(succeeded, "no reason given")
else
  hs.status = "Progressing"
  hs.message = describe(succeeded, "The backup is running")
end
return hs
