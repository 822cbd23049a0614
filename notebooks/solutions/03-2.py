import time

strict = nbstream.serve(heartbeat_interval=0.2, heartbeat_timeout=0.2, thread=True)
strict_flow = nbstream.FlowView(strict)
display(strict_flow)
sleeper = await nbstream.aconnect(strict, user="sleeper")
await sleeper.achat("hello")
time.sleep(1)  # a blocking cell: this kernel's loop, and the client on it, stand still
await asyncio.sleep(1)  # the loop runs again: the client sees the close and comes back
for row in strict_flow.flow_log.rows():
    if row.type in ("open", "close"):
        print(row.type, row.preview)
print("reconnects:", sleeper.reconnects, "recovered:", sleeper.recovered)
