"""WebSocket echo server and client (python3-websockets) for the upgrade
tests.

    ws_echo.py server ADDR PORT      prints "listening", "open PATH" per
                                     connection
    ws_echo.py client URL TEXT       prints "echo TEXT" or "error STATUS/E"
"""
import asyncio
import sys

import websockets


async def serve(addr, port):
    async def echo(ws, path=None):
        # websockets 10 (Debian bookworm) names it ws.path; newer ws.request.path
        p = path or getattr(ws, "path", None) or ws.request.path
        print("open %s" % p, flush=True)
        async for msg in ws:
            await ws.send(msg)

    async with websockets.serve(echo, addr, port):
        print("listening", flush=True)
        await asyncio.sleep(600)


async def client(url, text):
    try:
        async with websockets.connect(url, open_timeout=10) as ws:
            await ws.send(text)
            print("echo %s" % await asyncio.wait_for(ws.recv(), 10), flush=True)
    except websockets.exceptions.InvalidStatusCode as e:
        print("error status %d" % e.status_code, flush=True)
    except websockets.exceptions.InvalidStatus as e:
        print("error status %d" % e.response.status_code, flush=True)
    except Exception as e:  # noqa: BLE001 (report whatever the client met)
        print("error %s" % type(e).__name__, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(client(sys.argv[2], sys.argv[3]))
