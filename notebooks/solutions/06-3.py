limited = await nbstream.aserve(nbstream.Agent(token_delay=0.002), rate_limit=2)
throttled = await nbstream.aload_test(limited, connections=5, messages=10, progress=False)
throttled.summary().filter(like="errors", axis=0)
