-- wrk script for bench/webhooks: Telegram updates with unique update_id and message_id per request,
-- spread over 5,000 senders so most requests find an existing client.
local counter = 0
local thread_no = 0
local secret = os.getenv("BENCH_TG_SECRET")
local path = os.getenv("BENCH_TG_PATH")

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
end

function init(args)
  counter = tid * 100000000
end

function request()
  counter = counter + 1
  local sender = 600000000 + (counter % 5000)
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,"first_name":"Bench","last_name":"User %d"},"chat":{"id":%d,"type":"private"},"date":1763812800,"text":"Здравствуйте! Сообщение %d о заказе мебели."}}',
    counter, counter, sender, sender % 5000, sender, counter)
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-Telegram-Bot-Api-Secret-Token"] = secret,
  }, body)
end
