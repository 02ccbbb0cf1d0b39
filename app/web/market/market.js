// The market pages (app/web/page.py): the index lists the symbols, a symbol's
// page follows its stream. No library, nothing fetched from elsewhere.
"use strict";

const TAPE_LENGTH = 50;
const REOPEN_AFTER_MS = 3000;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function row(cells, className) {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  cells.forEach((td) => tr.appendChild(td));
  return tr;
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

async function showSymbols() {
  const message = document.getElementById("message");
  try {
    const response = await fetch("/symbols", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { symbols } = await response.json();
    const body = document.getElementById("symbols");
    body.replaceChildren(
      ...symbols.map((quote) => {
        const link = document.createElement("a");
        link.href = `/market/${encodeURIComponent(quote.sym)}`;
        link.textContent = quote.sym;
        const name = cell("");
        name.appendChild(link);
        const time = quote.time === null ? "" : clock(quote.time);
        return row([name, cell(quote.price, "number"), cell(time, "number")]);
      }),
    );
    message.textContent = symbols.length ? "" : "No symbols yet.";
  } catch (error) {
    message.textContent = `Could not load the symbols: ${error.message}`;
  }
}

// Asks above bids, each side's best next to the other's, as a trader reads a ladder.
function showBook(book) {
  const asks = book.asks.slice().reverse().map((level) =>
    row([cell(""), cell(""), cell(level.price, "number price"),
         cell(level.shares, "number"), cell(level.orders, "number")], "ask"));
  const bids = book.bids.map((level, index) =>
    row([cell(level.orders, "number"), cell(level.shares, "number"),
         cell(level.price, "number price"), cell(""), cell("")],
        index === 0 ? "bid best-bid" : "bid"));
  const ladder = document.getElementById("ladder");
  if (!asks.length && !bids.length) {
    ladder.replaceChildren(row([cell("no open orders", "empty")]));
    ladder.firstChild.firstChild.colSpan = 5;
  } else {
    ladder.replaceChildren(...asks, ...bids);
  }
}

function addTrades(trades, fresh) {
  const tape = document.getElementById("tape");
  trades.forEach((trade) => {
    const tr = row([cell(clock(trade.time)), cell(trade.price, "number"),
                    cell(trade.shares, "number")], fresh ? "new" : "");
    tape.insertBefore(tr, tape.firstChild);
  });
  while (tape.children.length > TAPE_LENGTH) tape.removeChild(tape.lastChild);
}

function setStatus(state) {
  const status = document.getElementById("status");
  status.dataset.state = state;
  status.textContent = state;
}

async function followSymbol(symbol) {
  const path = `/symbols/${encodeURIComponent(symbol)}`;
  document.getElementById("title").textContent = symbol;
  document.title = `${symbol} · Market`;
  try {
    const response = await fetch(`${path}/trades?limit=${TAPE_LENGTH}`,
                                 { headers: { Accept: "application/json" } });
    if (response.ok) addTrades((await response.json()).trades.reverse(), false);
  } catch (error) {
    // The stream below says whether the service can be reached.
  }
  // The browser reconnects a broken stream by itself, sending the id of the last
  // trade it got, and the stream resumes after it. A stream refused outright
  // (the service restarting, or full) is opened again after a pause.
  const open = () => {
    const stream = new EventSource(`${path}/stream`);
    stream.addEventListener("open", () => setStatus("live"));
    stream.addEventListener("book", (event) => showBook(JSON.parse(event.data)));
    stream.addEventListener("trade", (event) => addTrades([JSON.parse(event.data)], true));
    stream.addEventListener("error", () => {
      setStatus("reconnecting");
      if (stream.readyState === EventSource.CLOSED) setTimeout(open, REOPEN_AFTER_MS);
    });
  };
  open();
}

// One page for both: /market lists the symbols, /market/SYM follows one.
const [, symbol] = location.pathname.match(/^\/market\/?(.*)$/);
if (symbol) {
  for (const id of ["market", "status"]) document.getElementById(id).hidden = false;
  document.querySelector(".back").hidden = false;
  followSymbol(decodeURIComponent(symbol));
} else {
  document.getElementById("index").hidden = false;
  showSymbols();
}
