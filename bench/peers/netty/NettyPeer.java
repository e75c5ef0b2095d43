// Peer server for the Herald benchmark matrix, on Netty 4.1 (Debian's libnetty-java).
//
//   /ws         echo: every message back, text as text, binary as binary
//   /broadcast  every message to every client of /broadcast, sender included
//
// Usage: java -cp CLASSES:NETTY_JARS NettyPeer PORT
//
// One NIO event loop thread does everything (accept and all connections), no
// extensions (no permessage-deflate), messages up to 16 MiB (fragmented
// messages are joined by WebSocketFrameAggregator). The upgrade path picks the
// pipeline: a small router looks at the handshake request and installs a
// WebSocketServerProtocolHandler for that path plus the echo or broadcast
// handler. Echo writes each frame back and flushes once per read batch.
// Broadcast hands one frame to a ChannelGroup, which writes and flushes a
// retained duplicate of it to every member (void promises: no per-channel
// futures).
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.ChannelMatchers;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketFrameAggregator;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolHandler;
import io.netty.util.ReferenceCountUtil;
import java.util.concurrent.TimeUnit;

public final class NettyPeer {
    static final int MAX_MESSAGE = 16 * 1024 * 1024;

    static ChannelGroup subscribers;

    static boolean isData(Object msg) {
        return msg instanceof TextWebSocketFrame || msg instanceof BinaryWebSocketFrame;
    }

    /** Echo: the received frame goes back as it is; one flush per read batch. */
    @ChannelHandler.Sharable
    static final class Echo extends ChannelInboundHandlerAdapter {
        static final Echo INSTANCE = new Echo();

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (isData(msg)) {
                ctx.write(msg);
            } else {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.flush();
        }
    }

    /** Broadcast: members join the group once the handshake is done. */
    @ChannelHandler.Sharable
    static final class Broadcast extends ChannelInboundHandlerAdapter {
        static final Broadcast INSTANCE = new Broadcast();

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof WebSocketServerProtocolHandler.HandshakeComplete) {
                subscribers.add(ctx.channel());
            }
            ctx.fireUserEventTriggered(evt);
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (isData(msg)) {
                // The group writes msg.retainedDuplicate() to each member and
                // releases msg afterwards.
                subscribers.writeAndFlush(msg, ChannelMatchers.all(), true);
            } else {
                ReferenceCountUtil.release(msg);
            }
        }
    }

    /** Picks the WebSocket pipeline from the path of the upgrade request, then steps aside. */
    static final class Router extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (!(msg instanceof FullHttpRequest)) {
                ctx.fireChannelRead(msg);
                return;
            }
            FullHttpRequest req = (FullHttpRequest) msg;
            String path = new QueryStringDecoder(req.uri()).path();
            ChannelHandler app;
            if (path.equals("/ws")) {
                app = Echo.INSTANCE;
            } else if (path.equals("/broadcast")) {
                app = Broadcast.INSTANCE;
            } else {
                req.release();
                DefaultFullHttpResponse res = new DefaultFullHttpResponse(
                        HttpVersion.HTTP_1_1, HttpResponseStatus.NOT_FOUND, Unpooled.EMPTY_BUFFER);
                res.headers().set(HttpHeaderNames.CONTENT_LENGTH, 0);
                ctx.writeAndFlush(res).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            ChannelPipeline p = ctx.pipeline();
            p.addAfter(ctx.name(), "ws", new WebSocketServerProtocolHandler(path, null, false, MAX_MESSAGE));
            p.addAfter("ws", "join", new WebSocketFrameAggregator(MAX_MESSAGE));
            p.addAfter("join", "app", app);
            p.remove(this);
            ctx.fireChannelRead(req);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: NettyPeer PORT");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        EventLoopGroup loop = new NioEventLoopGroup(1);
        subscribers = new DefaultChannelGroup("broadcast", loop.next());
        try {
            ServerBootstrap b = new ServerBootstrap()
                    .group(loop)
                    .channel(NioServerSocketChannel.class)
                    .option(ChannelOption.SO_BACKLOG, 4096)
                    .childOption(ChannelOption.TCP_NODELAY, true)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(
                                    new HttpServerCodec(),
                                    new HttpObjectAggregator(65536),
                                    new Router());
                        }
                    });
            Channel server = b.bind("127.0.0.1", port).sync().channel();
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                server.close();
                loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
            }));
            System.out.println("listening on 127.0.0.1:" + port);
            System.out.flush();
            server.closeFuture().sync();
        } finally {
            loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }
}
