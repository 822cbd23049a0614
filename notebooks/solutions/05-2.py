budget = await nbstream.aserve(big_or_report, history_max_bytes=20_000)
c = await nbstream.aconnect(budget)
for i in range(3):
    await c.achat(f"message {i}", timeout=5)
print((await c.achat("how much do you remember?", timeout=5))[0].text)
await c.achat("big", timeout=5)
print((await c.achat("and now?", timeout=5))[0].text)
