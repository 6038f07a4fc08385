-- wrk script: POSTs the benchmark's request bodies to chatt2me-sim in turn.
-- Arguments after "--": a file of "<channel><TAB><body>" lines, the API key.
local requests = {}
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    local channel, body = line:match("^([^\t]+)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST",
      "/v1/communication/" .. channel .. "/message",
      { ["Content-Type"] = "application/json", ["x-api-key"] = args[2] }, body)
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
end
