-- Argo CD health check for conflux.io/ConfluxCluster.
-- Decided from status.conditions and observedGeneration, never from status.phase.
-- Written for Lua 5.1 (Argo CD runs gopher-lua): no integer division, no goto.
local hs = {}

local function getCondition(status, condType)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == condType then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.message
  if text == nil or text == "" then
    text = c.reason
  end
  if text == nil or text == "" then
    return fallback
  end
  return text
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

-- A condition set for an older generation says nothing about the current spec.
local function isCurrent(c)
  if c == nil then
    return false
  end
  if generation == nil or c.observedGeneration == nil then
    return true
  end
  return c.observedGeneration >= generation
end

local function isTrue(c)
  return c ~= nil and c.status == "True" and isCurrent(c)
end

local function isFalse(c)
  return c ~= nil and c.status == "False" and isCurrent(c)
end

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (spec.paused)"
  return hs
end

local status = obj.status
if status == nil or (status.conditions == nil and status.observedGeneration == nil) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the cluster"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = getCondition(status, "Stalled")
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = "Stalled: " .. describe(stalled, "the operator cannot make progress")
  return hs
end

local progressing = getCondition(status, "Progressing")

-- A cluster being created or restored is not available yet, and not degraded either.
local bootstrapped = getCondition(status, "Bootstrapped")
if isFalse(bootstrapped) then
  hs.status = "Progressing"
  if isTrue(progressing) then
    hs.message = describe(progressing, "The operator is creating the cluster")
  else
    hs.message = "Bootstrapping: " .. describe(bootstrapped, "not initialized yet")
  end
  return hs
end

local available = getCondition(status, "Available")
if isFalse(available) then
  hs.status = "Degraded"
  hs.message = "Not available: " .. describe(available, "no quorum")
  return hs
end

-- A member the operator is restarting, adding or removing is briefly unreachable: that is the
-- rollout itself (Progressing), as for a Deployment; a rollout that cannot go on is Stalled.
if isTrue(progressing) then
  hs.status = "Progressing"
  hs.message = describe(progressing, "The operator is acting on the cluster")
  return hs
end

local degraded = getCondition(status, "Degraded")
if isTrue(degraded) then
  hs.status = "Degraded"
  hs.message = describe(degraded, "The cluster is degraded")
  return hs
end

local ready = getCondition(status, "Ready")
if isTrue(ready) and isTrue(available) then
  hs.status = "Healthy"
  hs.message = describe(ready, "The cluster is ready")
  return hs
end

hs.status = "Progressing"
if ready ~= nil and isCurrent(ready) and ready.status ~= "True" then
  hs.message = "Not ready: " .. describe(ready, "waiting for members")
else
  hs.message = "Waiting for the cluster to become ready and available"
end
return hs
