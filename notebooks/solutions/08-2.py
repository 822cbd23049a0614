from nbstream.protocol import Backoff

client = await ns.aconnect(weather_server.url, timeout=10,
                           reconnect=Backoff(base=2.0, random=lambda: 1.0))
await client.asay("what is the weather in Paris")
async for event in client.events():
    if event.type == "bidi_tool_use_blocks":
        break
await weather_server.adisconnect(client.session_id, abrupt=True)
answer = await client.aresponse()
print(f"reconnects: {client.client.reconnects}, recovered: {client.client.recovered}, "
      f"replayed: {client.client.welcome.data['replayed']}")
print(answer.types[:4], answer.transcript)
