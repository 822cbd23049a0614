tight = await nbstream.aserve(reporter, history_max_messages=1_000, history_max_bytes=2_000)
c = await nbstream.aconnect(tight)
for i in range(50):
    await c.achat(f"message {i}", timeout=5)
(await c.achat("how much do you remember?", timeout=5))[0].text
