-- wrk script for the independent cross-check in BENCHMARKS.md: POST
-- /v1/ping with the README's auto lead, each request made unique by its
-- source_id (identical bodies would be answered as idempotent re-pings).
--   wrk -t1 -c16 -d10s -s loadtest/wrk/ping.lua http://127.0.0.1:8080
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer demo-seller-key"
wrk.headers["Content-Type"] = "application/json"

local n = 0
local head = '{"vertical":"auto","zip":"90210","state":"CA","age":34,"gender":"female",'
  .. '"credit":"good","homeowner":true,"currently_insured":true,"current_carrier":"geico",'
  .. '"insured_months":36,"vehicles":2,"drivers":2,"violations":0,"accidents":0,'
  .. '"device":"mobile","sale_type":"any","consent":{"tcpa_text":"By clicking Get Quotes I agree '
  .. 'to be contacted by insurance agents.","trustedform_cert_url":'
  .. '"https://cert.trustedform.com/2f1c3d5e7a9b","jornaya_leadid":'
  .. '"A1B2C3D4-E5F6-7890-ABCD-EF1234567890"},"source_id":"wrk-'

request = function()
  n = n + 1
  return wrk.format(nil, "/v1/ping", nil, head .. n .. '"}')
end

-- Count non-200 answers so a broken run cannot pass for a fast one.
local errors = 0
response = function(status)
  if status ~= 200 then errors = errors + 1 end
end
done = function()
  io.write(string.format("non-200 answers: %d\n", errors))
end
