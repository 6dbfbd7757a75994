"""An agent behind any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

Tools are sent as function schemas; a native `tool_calls` reply is used when present, otherwise the text is
parsed like a local model's. Only the standard library is used (urllib); the API key, if any, is read from
the environment variable named in `api_key_env`, never stored.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from keel.agents.base import Action, Finish
from keel.agents.llm_agent import ChatAgent
from keel.agents.parsing import ParseError, parse_action
from keel.envs.toolworld.env import Observation
from keel.envs.toolworld.tasks import Call
from keel.errors import KeelError


class OpenAICompatAgent(ChatAgent):
    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout_s: float = 60.0, temperature: float = 0.0):
        self.name = f"openai:{model}"
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.timeout_s = timeout_s
        self.temperature = temperature
        self._call_id: str | None = None

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, json.dumps(payload).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise KeelError(f"{self.url}: HTTP {e.code}: {e.read()[:200]!r}") from None
        except (urllib.error.URLError, TimeoutError) as e:
            raise KeelError(f"cannot reach {self.url}: {e}; is the server running?") from None

    def act(self, observation: Observation | None) -> Action:
        if observation is not None and isinstance(self.last, Call):
            if self._call_id:  # a native tool call gets a `tool` message; a text-format one a user message
                self.messages.append({"role": "tool", "tool_call_id": self._call_id, "content": observation.text[:4000]})
            else:
                self.messages.append({"role": "user", "content": f"Result of {self.last.tool}: {observation.text[:4000]}"})
        payload = {"model": self.model, "messages": self.messages, "temperature": self.temperature,
                   "tools": [{"type": "function", "function": t} for t in self.tools]}
        msg = self._post(payload)["choices"][0]["message"]
        calls = msg.get("tool_calls") or []
        if calls:
            fn = calls[0]["function"]
            self._call_id = calls[0].get("id", "call_0")
            self.messages.append({"role": "assistant", "content": msg.get("content") or "", "tool_calls": calls[:1]})
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {"_unparsed": fn.get("arguments")}
            self.last = Call(fn["name"], args if isinstance(args, dict) else {"_unparsed": args})
            return self.last
        text = msg.get("content") or ""
        self.messages.append({"role": "assistant", "content": text})
        try:
            self.last = parse_action(text, self.tool_names)
        except ParseError:
            self.last = Finish(text)
        self._call_id = None
        return self.last
