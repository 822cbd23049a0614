lost = proxy.add("drop", match="content", times=1)
got = numbers(await client.achat("count", n=10, timeout=10))
lost.remove()
print(len(got), "numbers:", got)
