sliced = proxy.add("slicer", average_size=1, delay_us=50, direction="both")
got = numbers(await client.achat("count", n=10, timeout=10))
sliced.remove()
assert got == [str(i) for i in range(10)]
got
